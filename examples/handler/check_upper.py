#!/usr/bin/env python3
"""check_upper.py PORT - talks to the "upper" handler (examples/handler/upper.c,
the README's handler) on 127.0.0.1:PORT: sends 20,000 bytes, more than any
buffer in it, then half-closes, reads until the server closes, and prints
"LENGTH True" when every byte came back upper-cased (e.g. "20000 True")."""
import socket
import sys

s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
data = bytes(ord('a') + i % 26 for i in range(20000))
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
print(len(got), got == data.upper())
