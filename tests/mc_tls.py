#!/usr/bin/env python3
"""mc_tls.py CAFILE WHARF_PORT [MEMCACHED_PORT] - run by check_mc_tls.sh:
the memcache handler behind a TLS listener, driven by TLS clients, and,
when a memcached -Z port is given, the same exchanges sent to it too with
the replies compared byte for byte.

Both servers must be fresh: the raw exchanges come first, in the same
order on both, so the cas ids they hand out line up (wharf counts them as
memcached does).  Then pymemcache with tls_context: the usual operations,
2,001 keys by set_many/get_many, on each server, the answers compared, and
a 500 KB value from wharf.  Then a 500 KB value in each protocol, to wharf
alone (memcached 1.6.18 -Z stalls sending a value of 16 KB or more).  Finally a text script to wharf with every byte in a TLS record of
its own (splits at every byte, over TLS).

Prints "ok: ..." per check and exits non-zero on the first failure."""
import select
import socket
import ssl
import struct
import sys
import time

from pymemcache.client.base import Client

CAFILE = sys.argv[1]
WHARF = int(sys.argv[2])
MEMCACHED = int(sys.argv[3]) if len(sys.argv) > 3 else 0


def context():
    ctx = ssl.create_default_context(cafile=CAFILE)
    ctx.check_hostname = True
    return ctx


def fail(what):
    print("FAIL: " + what)
    sys.exit(1)


def ok(what):
    print("ok: " + what)


def tls_socket(port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context().wrap_socket(raw, server_hostname="localhost")


def exchange(port, script, chunk=0):
    """Sends script over a new TLS connection (chunk > 0: that many bytes per
    TLS record, else 16 KiB) while reading, until the server closes (both
    servers stop reading while a reply waits to be written: sending all
    before reading would deadlock); returns the bytes read."""
    s = tls_socket(port)
    s.setblocking(False)
    step = chunk or 16384
    sent, out = 0, b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        want_w = [s] if sent < len(script) else []
        if not s.pending():
            select.select([s], want_w, [], 1)
        try:
            if sent < len(script):
                sent += s.send(script[sent:sent + step])
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            pass
        try:
            b = s.recv(65536)
            if not b:
                break
            out += b
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except (ssl.SSLEOFError, ConnectionResetError):
            break  # closed without close_notify: what came before counts
    else:
        fail("port %d: no end to the exchange in 60 s (%d of %d bytes sent, %d read)"
             % (port, sent, len(script), len(out)))
    s.close()
    return out


BIG = bytes(range(256)) * 2000  # 512,000 bytes

TEXT = (b"set k 7 0 5\r\nhello\r\nget k\r\ngets k\r\n"
        b"add k 0 0 1\r\nx\r\nappend k 0 0 6\r\n world\r\nprepend k 0 0 1\r\n>\r\nget k\r\n"
        b"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr n 18446744073709551615\r\n"
        b"cas k 0 0 1 999\r\nz\r\ntouch k 100\r\ndelete k\r\ndelete k\r\nget k n\r\n"
        b"bogus\r\n"
        b"set q 0 0 1 noreply\r\nq\r\nget q\r\nquit\r\n")

TEXT_EXPECT = (b"STORED\r\nVALUE k 7 5\r\nhello\r\nEND\r\n")


def binary(opcode, key=b"", value=b"", extras=b"", cas=0, opaque=0):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0,
                       len(body), opaque, cas) + body


BINARY = (binary(0x01, b"bk", b"binval", struct.pack(">II", 3, 0), opaque=1)      # set
          + binary(0x00, b"bk", opaque=2)                                        # get
          + binary(0x0c, b"bk", opaque=3)                                        # getk
          + binary(0x00, b"nokey", opaque=4)                                     # get miss
          + binary(0x02, b"bk", b"x", struct.pack(">II", 0, 0), opaque=5)        # add: exists
          + binary(0x05, b"bn", extras=struct.pack(">QQI", 5, 40, 0), opaque=6)  # incr: creates
          + binary(0x05, b"bn", extras=struct.pack(">QQI", 2, 0, 0), opaque=7)   # incr
          + binary(0x0e, b"bk", b"!", opaque=8)                                  # append
          + binary(0x0c, b"bk", opaque=9)
          + binary(0x04, b"bk", opaque=12)                                       # delete
          + binary(0x04, b"bk", opaque=13)                                       # delete: miss
          + binary(0x0a, opaque=14)                                              # noop
          + binary(0x07, opaque=15))                                             # quit

META = (b"ms mk 5 F9 T0 c\r\nmeta!\r\nmg mk v f s c k\r\nmg mk q\r\nmg nope v\r\n"
        b"ma mn N0 J13 v\r\nma mn v\r\nmd mk q\r\nmg mk v\r\n"
        b"mn\r\nquit\r\n")

# The 500 KB value in each protocol, to wharf alone (memcached 1.6.18 -Z
# never sends a value of 16 KB or more: its reply stalls), the replies
# checked whole.
BIG_TEXT = (b"set big 0 0 %d\r\n" % len(BIG) + BIG + b"\r\nget big\r\nquit\r\n",
            b"STORED\r\nVALUE big 0 %d\r\n" % len(BIG) + BIG + b"\r\nEND\r\n")
BIG_BINARY = (binary(0x01, b"bbig", BIG, struct.pack(">II", 0, 0), opaque=10)
              + binary(0x00, b"bbig", opaque=11) + binary(0x07, opaque=12), None)
BIG_META = (b"ms mbig %d\r\n" % len(BIG) + BIG + b"\r\nmg mbig s v\r\nquit\r\n",
            b"HD\r\nVA %d s%d\r\n" % (len(BIG), len(BIG)) + BIG + b"\r\n")


def raw_exchanges():
    for name, script in (("text", TEXT), ("binary", BINARY), ("meta", META)):
        got = exchange(WHARF, script)
        if len(got) < 40:
            fail("%s protocol over TLS: short reply: %r" % (name, got))
        if MEMCACHED:
            want = exchange(MEMCACHED, script)
            if got != want:
                at = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                          min(len(got), len(want)))
                fail("%s protocol over TLS: wharf and memcached -Z differ at byte %d of "
                     "%d/%d: wharf %r, memcached %r" % (name, at, len(got), len(want),
                                                         got[at:at + 120], want[at:at + 120]))
            ok("%s protocol over TLS: %d bytes, byte-identical to memcached -Z" % (name, len(got)))
        else:
            ok("%s protocol over TLS: %d bytes" % (name, len(got)))
        if name == "text" and not got.startswith(TEXT_EXPECT):
            fail("text protocol over TLS: %r" % got[:100])


def big_exchanges():
    for name, (script, want) in (("text", BIG_TEXT), ("binary", BIG_BINARY),
                                 ("meta", BIG_META)):
        got = exchange(WHARF, script)
        if name == "binary":
            # set's reply (24 bytes), get's: header, 4 bytes of flags, the value
            good = (len(got) == 24 + 24 + 4 + len(BIG) + 24 and got[1] == 0x01
                    and got[24 + 1] == 0x00 and got[24 + 28:24 + 28 + len(BIG)] == BIG)
        else:
            good = got == want
        if not good:
            fail("%s protocol over TLS, a 500 KB value: %d bytes back: %r..."
                 % (name, len(got), got[:80]))
        ok("%s protocol over TLS: a 500 KB value stored and read back whole" % name)


def pymemcache_run(port, big):
    """The operations through pymemcache's tls_context; returns the answers."""
    c = Client(("127.0.0.1", port), tls_context=context(), connect_timeout=5, timeout=20)
    r = []
    c.set("p", b"v1")
    r.append(c.get("p"))
    v, cas = c.gets("p")
    r.append((v, cas))
    r.append(c.cas("p", b"v2", cas))
    r.append(c.cas("p", b"v3", cas))
    r.append(c.get("p"))
    c.set("cnt", b"10")
    r.append(c.incr("cnt", 5))
    r.append(c.decr("cnt", 100))
    r.append(c.add("p", b"x", noreply=False))
    r.append(c.delete("p", noreply=False))
    r.append(c.get("p"))
    if big:
        c.set("big", BIG)
        got = c.get("big")
        if got != BIG:
            fail("pymemcache tls_context, port %d: 500 KB value came back as %d bytes"
                 % (port, len(got or b"")))
    keys = {"key%04d" % i: (b"value-%d-" % i) * (1 + i % 17) for i in range(2000)}
    keys["key2000"] = b"k" * 8000
    names = sorted(keys)
    failed = []  # (in batches of 100: memcached 1.6.18 -Z stalls on a 400 KB batch too)
    for i in range(0, len(names), 100):
        failed += c.set_many({k: keys[k] for k in names[i:i + 100]}, noreply=False)
    if failed:
        fail("pymemcache tls_context set_many: %d keys not stored" % len(failed))
    back = {}
    for i in range(0, len(names), 100):
        back.update(c.get_many(names[i:i + 100]))
    if back != keys:
        fail("pymemcache tls_context get_many: %d of %d keys back, values %s"
             % (len(back), len(keys), "differ" if len(back) == len(keys) else "missing"))
    r.append(len(back))
    r.append(c.get_many(["key0001", "nokey", "key1999"]))
    c.close()
    return r


def main():
    raw_exchanges()
    mine = pymemcache_run(WHARF, True)
    ok("pymemcache tls_context: set/get/gets/cas/incr/decr/add/delete, a 500 KB value, "
       "2,001 keys by set_many/get_many")
    if MEMCACHED:
        theirs = pymemcache_run(MEMCACHED, False)
        if mine != theirs:
            fail("pymemcache over TLS: wharf answered %r, memcached -Z %r" % (mine, theirs))
        ok("pymemcache tls_context: the same answers from memcached -Z")
    big_exchanges()
    # The text script again, every byte in a record of its own: the same
    # reply as in one piece (the cas ids moved on: compared without them).
    small = TEXT
    whole = exchange(WHARF, small)
    split = exchange(WHARF, small, chunk=1)
    strip = lambda b: b"\r\n".join(l.rsplit(b" ", 1)[0] if l.startswith(b"VALUE k ") else l
                                   for l in b.split(b"\r\n"))
    if strip(whole) != strip(split) or len(whole) < 100:
        fail("text over TLS one byte a record: %r, in one piece %r" % (split, whole))
    ok("text protocol over TLS with every byte in its own record: the same %d bytes"
       % len(split))


main()
