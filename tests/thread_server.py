"""thread_server.py - the accept loop of the small Python servers the shell tests start
(tests/h2_hostile.py, tests/load_http_body.py): listens on 127.0.0.1 port 0, prints
"port N" on stdout, and runs serve(conn, *args) on a thread of its own for every
connection (at most 64 at once: the next ones are closed) until `seconds` have passed.
"""
import socket
import threading
import time

MAX_THREADS = 64


def run(serve, seconds, *args):
    end = time.time() + float(seconds)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    srv.settimeout(0.2)
    print("port %d" % srv.getsockname()[1], flush=True)
    while time.time() < end:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        if threading.active_count() > MAX_THREADS:
            conn.close()
            continue
        threading.Thread(target=serve, args=(conn,) + args, daemon=True).start()
    return end
