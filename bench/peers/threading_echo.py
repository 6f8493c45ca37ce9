"""threading_echo.py - the echo server the Python standard library tutorial leads to:
socketserver.ThreadingTCPServer, one thread per connection, blocking recv/sendall.
Used by bench/run.sh.

    python3 threading_echo.py [PORT] [LISTENERS]

Binds 127.0.0.1 (PORT 0 = ephemeral; LISTENERS > 1: that many servers on ports PORT,
PORT+1, ... or all ephemeral, each served by its own thread), prints
"listening on tcp 127.0.0.1:PORT" on stderr for each.
Exits on SIGTERM/SIGINT, or after 900 s.
"""
import signal
import socket
import socketserver
import sys
import threading

HOST = "127.0.0.1"


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self):
        s = self.request
        while True:
            data = s.recv(65536)
            if not data:
                return
            s.sendall(data)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False
    request_queue_size = 511


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    listeners = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    servers = [Server((HOST, port + i if port else 0), Handler) for i in range(listeners)]
    for srv in servers:
        print(f"listening on tcp {HOST}:{srv.server_address[1]}", file=sys.stderr, flush=True)
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, args=(0.5,), daemon=True).start()

    def stop(*_):
        for srv in servers:
            threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(900, stop)
    timer.daemon = True
    timer.start()
    servers[0].serve_forever(poll_interval=0.5)


main()
