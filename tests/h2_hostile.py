#!/usr/bin/env python3
"""h2_hostile.py - a hostile HTTP/2 (h2c, prior knowledge) server for
tests/check_load_h2.sh: it answers the first request of each connection with a response
whose header block never ends.

    h2_hostile.py MODE SECONDS

MODE:
  continuation  a HEADERS frame (:status 200, no END_HEADERS) and then CONTINUATION frames
                of one small header each, without end
  bigheader     a HEADERS frame and CONTINUATION frames of 16000 bytes of headers each
                (every header field under 1 KB, so only the size of the block is wrong),
                without end
Listens on 127.0.0.1 port 0 and prints "port N"; ends after SECONDS (the test also ends
it by its pid). Each connection writes until the client closes it. Stdlib only: the HPACK
it sends is literal header fields without indexing (RFC 7541 6.2.2) and the static table's
:status 200 (index 8).
"""
import struct
import sys
import time

import thread_server

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, SETTINGS, CONTINUATION = 1, 4, 9
ACK = 1


def frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def hpack_int(n, prefix=7):
    top = (1 << prefix) - 1
    if n < top:
        return bytes([n])
    out = [top]
    n -= top
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def literal(name, value):
    return b"\x00" + hpack_int(len(name)) + name + hpack_int(len(value)) + value


def read_frames(conn, buf):
    """Reads until one whole frame is in buf; returns (type, flags, stream, payload, rest)."""
    while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    n = int.from_bytes(buf[:3], "big")
    stream = struct.unpack(">I", buf[5:9])[0] & 0x7FFFFFFF
    return buf[3], buf[4], stream, buf[9:9 + n], buf[9 + n:]


def serve(conn, mode, end):
    conn.settimeout(5)
    try:
        buf = b""
        while len(buf) < len(PREFACE):
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
        if not buf.startswith(PREFACE):
            return
        buf = buf[len(PREFACE):]
        conn.sendall(frame(SETTINGS, 0, 0, b""))
        while True:
            ftype, flags, stream, payload, buf = read_frames(conn, buf)
            if ftype == SETTINGS and not flags & ACK:
                conn.sendall(frame(SETTINGS, ACK, 0, b""))
            if ftype == HEADERS:
                break
        if mode == "bigheader":
            block = b"".join(literal(b"x-big-%d" % i, b"v" * 960) for i in range(16))
            conn.sendall(frame(HEADERS, 0, stream, b"\x88" + block))
            more = block
        else:
            conn.sendall(frame(HEADERS, 0, stream, b"\x88" + literal(b"x-flood", b"0")))
            more = literal(b"x-flood", b"f" * 100)
        while time.time() < end:
            conn.sendall(frame(CONTINUATION, 0, stream, more))
    except (OSError, EOFError):
        return
    finally:
        conn.close()


def main():
    mode, seconds = sys.argv[1], float(sys.argv[2])
    thread_server.run(serve, seconds, mode, time.time() + seconds)


if __name__ == "__main__":
    main()
