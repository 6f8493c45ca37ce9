#!/usr/bin/env python3
"""load_http_body.py - a small HTTP/1.1 server for tests/check_load_nginx.sh that checks the
request bodies wharf-load sends (--data, --method), byte for byte.

    load_http_body.py BODYFILE SECONDS

Listens on 127.0.0.1 port 0 and prints "port N" on stdout; ends after SECONDS (the test also
ends it by its pid). Keep-alive, pipelined requests; every connection on its own thread.
What it answers, by path:
  /body    the body must be exactly BODYFILE's bytes, with the right Content-Length:
           200 "ok", else 500 with the reason
  /empty   the request must say Content-Length: 0 and carry no body: 200, else 500
  /head    a HEAD: 200 with "Content-Length: 1000" and no body (as RFC 9110 says)
  /count   the counts so far as JSON: {"METHOD /path ok": n, "METHOD /path bad": n, ...}
           (this request is not counted)
Any request that is not HTTP/1.1 or has a bad Content-Length ends the connection, counted
as "garbage". Bounded: at most 64 KiB of headers, 2 MiB of body, 64 connections.
"""
import json
import sys
import threading

import thread_server

MAX_HEAD = 65536
MAX_BODY = 2 << 20

counts = {}
lock = threading.Lock()


def count(key):
    with lock:
        counts[key] = counts.get(key, 0) + 1


def reply(conn, status, body, head_only=False, length=None):
    text = {200: "OK", 500: "Internal Server Error"}[status]
    n = len(body) if length is None else length
    out = b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n\r\n" % (status, text.encode(), n)
    conn.sendall(out if head_only else out + body)


def serve(conn, expected):
    buf = b""
    conn.settimeout(30)
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                if len(buf) > MAX_HEAD:
                    count("garbage")
                    return
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            if len(parts) != 3 or parts[2] != b"HTTP/1.1":
                count("garbage")
                return
            method, path = parts[0].decode(), parts[1].decode()
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            clen = headers.get(b"content-length")
            try:
                n = int(clen) if clen is not None else 0
            except ValueError:
                n = -1
            if n < 0 or n > MAX_BODY or b"transfer-encoding" in headers:
                count("garbage")
                return
            while len(buf) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            body, buf = buf[:n], buf[n:]
            if path == "/count":
                with lock:
                    data = json.dumps(counts).encode()
                reply(conn, 200, data)
                continue
            why = ""
            if path == "/body":
                if clen is None:
                    why = "no Content-Length"
                elif body != expected:
                    why = "body differs: %d bytes, expected %d" % (len(body), len(expected))
            elif path == "/empty":
                if clen != b"0" or body:
                    why = "expected Content-Length: 0 and no body"
            elif path == "/head":
                if method != "HEAD":
                    why = "expected HEAD"
            else:
                why = "unknown path"
            count("%s %s %s" % (method, path, "bad" if why else "ok"))
            if why:
                reply(conn, 500, why.encode() + b"\n")
            elif path == "/head":
                reply(conn, 200, b"", head_only=True, length=1000)
            else:
                reply(conn, 200, b"ok\n")
    except OSError:
        return
    finally:
        conn.close()


def main():
    expected = open(sys.argv[1], "rb").read()
    thread_server.run(serve, sys.argv[2], expected)


if __name__ == "__main__":
    main()
