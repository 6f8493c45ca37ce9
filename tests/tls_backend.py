#!/usr/bin/env python3
"""tls_backend.py - the TLS backend of tests/check_proxy_tls.sh.

  tls_backend.py echo CERT KEY PORTFILE LOGFILE [ALPN,...]
      a TLS server on 127.0.0.1 (an ephemeral port, written to PORTFILE):
      each connection's SNI name and ALPN protocol are appended to LOGFILE
      ("sni NAME alpn PROTO"); it echoes every byte, and at the client's
      end of stream (close_notify) answers "BYE <bytes>\\n" and closes with
      its own close_notify (a half-close carried through);
  tls_backend.py stall PORTFILE
      accepts TCP connections and never answers (a handshake that stalls).

It runs until killed (by pid); every connection has a 30 s timeout.
"""
import socket
import ssl
import sys
import threading


def listen(portfile):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % s.getsockname()[1])
    import os
    os.rename(portfile + ".tmp", portfile)
    return s


def echo(conn, log):
    total = 0
    try:
        conn.settimeout(30)
        while True:
            b = conn.recv(65536)
            if not b:
                break
            total += len(b)
            conn.sendall(b)
        conn.sendall(b"BYE %d\n" % total)
        conn.unwrap()
    except (OSError, ssl.SSLError) as e:
        with open(log, "a") as f:
            f.write("error %s\n" % e)
    finally:
        conn.close()


def main():
    mode = sys.argv[1]
    if mode == "stall":
        s = listen(sys.argv[2])
        held = []
        while True:
            c, _ = s.accept()
            held.append(c)  # never read, never answered
    cert, key, portfile, log = sys.argv[2:6]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if len(sys.argv) > 6 and sys.argv[6]:
        ctx.set_alpn_protocols(sys.argv[6].split(","))
    names = {}

    def sni(sock, name, _ctx):
        names[id(sock)] = name

    ctx.sni_callback = sni
    s = listen(portfile)
    while True:
        raw, _ = s.accept()
        raw.settimeout(10)
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as e:
            with open(log, "a") as f:
                f.write("handshake failed: %s\n" % e)
            raw.close()
            continue
        with open(log, "a") as f:
            f.write("sni %s alpn %s\n" % (names.pop(id(conn), None), conn.selected_alpn_protocol()))
        threading.Thread(target=echo, args=(conn, log), daemon=True).start()


main()
