#!/usr/bin/env python3
"""mc_meta_exchange.py [-v] HOST MEMCACHED_PORT WHARF_PORT - run by
check_mc_meta_exchange.sh: sends each script below to both servers (one fresh
connection per script, the scripts in order, so both stores go through the
same history and hand out the same cas ids) and compares the replies byte for
byte.  A script ends when as many "MN\\r\\n" came back as it sent "mn\\r\\n".

Normalised, and only this: a "t<n>" (TTL left) or "l<n>" (seconds since the
last access) flag of a reply line may differ by one between the servers,
when one of them read its clock in the next second."""
import re
import socket
import sys
import time

BIG = 2 * 1024 * 1024  # a value over both servers' 1 MiB item limit


def cases():
    c = []

    def add(name, script):
        c.append((name, script if script.endswith(b"\nmn\r\n") else script + b"mn\r\n"))

    # mn, unknown meta commands, lines too short
    add("mn", b"mn\r\nmn extra tokens\r\n")
    add("unknown", b"mz foo\r\nmgg foo\r\nm\r\n")
    add("no key", b"mg\r\nms\r\nmd\r\nma\r\nme\r\n")
    # ms and mg, every mg flag
    add("ms basic", b"ms foo 2\r\nhi\r\nmg foo\r\nmg foo v\r\nmg foo s v\r\n")
    add("ms flags", b"ms bar 3 c k O1 F5 T0\r\nabc\r\n"
                    b"mg bar f s t v c k Oxyz h l q u\r\nmg bar h\r\nmg bar h l\r\n")
    add("mg miss", b"mg nope\r\nmg nope v k O7 s t c f\r\nmg nope q\r\nmg nope q k\r\n")
    add("ttl", b"ms t1 1 T100\r\nx\r\nmg t1 t\r\nmg t1 T50 t\r\nmg t1 t T0 t\r\n"
               b"mg t1 t\r\nms t1 1 T-1\r\nx\r\nmg t1 v\r\n")
    add("u and h", b"ms uh 1\r\nx\r\nmg uh u h\r\nmg uh h\r\nmg uh h\r\n")
    add("P L ignored", b"mg foo Lpath/ Pabc v\r\n")
    add("F tokens", b"ms fl 1 F4294967295\r\nx\r\nmg fl f\r\nms fl 1 F4294967296\r\nx\r\n"
                    b"mg fl f\r\nms fl 1 F-1\r\nx\r\nms fl 1 F\r\nx\r\nms fl 1 F+7\r\nx\r\n"
                    b"mg fl f\r\n")
    # ms modes
    add("mode add", b"ms m1 1 ME\r\na\r\nms m1 1 ME\r\nb\r\nmg m1 v\r\n")
    add("mode append prepend", b"ms m2 2 MA\r\nzz\r\nms m2 1 F3 T0\r\nb\r\n"
                               b"ms m2 1 MA\r\nc\r\nms m2 1 MP\r\na\r\nmg m2 v f\r\n")
    add("mode replace set", b"ms m3 1 MR\r\nx\r\nms m3 1 MS\r\ny\r\nms m3 1 MR c\r\nz\r\n"
                            b"mg m3 v c\r\n")
    add("mode invalid", b"ms m4 1 MX\r\nx\r\nms m4 1 MEE\r\nx\r\nms m4 1 Me\r\nx\r\n"
                        b"ms m4 1 M\r\nx\r\nmg m4 v\r\n")
    # cas
    add("cas", b"ms c1 1 c\r\na\r\nms c1 1 C1 c\r\nb\r\nms c1 1 C999 c\r\nb\r\n"
               b"ms c9 1 C5\r\nb\r\nms c1 1 C0\r\nb\r\nmg c1 c v\r\n"
               b"ms c1 1 MA C1\r\nx\r\nms c1 1 ME C1\r\nx\r\nms c9 1 MR C1\r\nx\r\n")
    add("cas append", b"ms c2 1 c\r\na\r\nmg c2 c\r\n")
    # stale-while-revalidate
    add("md invalidate", b"ms s1 3 T100\r\nold\r\nmd s1 I T30\r\nmg s1 v c t\r\n"
                         b"mg s1 v c\r\nmg s1 v\r\nmd s1 I q\r\nmg s1 c\r\n")
    add("ms invalidate", b"ms s2 1 c\r\na\r\nmd s2 I\r\nmg s2 c\r\n"
                         b"ms s2 3 I C1 c\r\nnew\r\nmg s2 v c\r\nmg s2 v\r\n"
                         b"ms s2 1 I C999\r\nz\r\nms s2 1 I\r\nz\r\nmg s2 v c\r\n")
    add("vivify", b"mg v1 N30 s t v c\r\nmg v1 N30 s t v c\r\nmg v1 v h\r\n"
                  b"ms v1 3\r\nnew\r\nmg v1 N30 v\r\nmg v2 N0 t q\r\nmg v2 t\r\n")
    add("recache", b"ms r1 1 T10\r\nx\r\nmg r1 R30 v\r\nmg r1 R30 v\r\nmg r1 R5\r\n"
                   b"ms r2 1 T100\r\nx\r\nmg r2 R30\r\nms r3 1\r\nx\r\nmg r3 R30\r\n"
                   b"mg r3 R0\r\n")
    # md
    add("md", b"ms d1 1\r\nx\r\nmd d1\r\nmd d1\r\nmd d1 q\r\nms d1 1\r\nx\r\nmd d1 q\r\n"
              b"mg d1\r\nms d2 1 c\r\nx\r\nmd d2 C1 O5 k\r\nmg d2 c\r\nmd d2 T30\r\nmg d2\r\n"
              b"md d3 O1 k q\r\n")
    add("md errors", b"md d1 v\r\nmd d1 q q\r\nmd d1 !\r\nmd d1 Cx\r\n"
                     b"md d1 O123456789012345678901234567890123\r\n")
    # ma
    add("ma", b"ma n1\r\nma n1 q\r\nma n1 N0 J10 v\r\nma n1 v\r\nma n1 MD D5 v\r\n"
              b"ma n1 M- D100 v\r\nma n1 M+ v t c\r\nma n1 MI D18446744073709551615 v\r\n"
              b"ma n1 q\r\nma n1 q v\r\nma n1 O9 k\r\nma nx O9 k\r\n")
    add("ma grow", b"ms n2 2\r\n99\r\nma n2 v c\r\nmg n2 v s\r\nma n2 D1 v\r\nmg n2 v s\r\n")
    add("ma cas and ttl", b"ms n3 1 T100\r\n5\r\nma n3 C1 v\r\nmg n3 c\r\nma n3 C0 v\r\n"
                          b"ma n3 t T30 t v\r\nma n4 N50 J7 t c v\r\nma n4 t\r\n")
    add("ma errors", b"ms n5 3\r\nabc\r\nma n5\r\nma n5 q\r\nms n6 0\r\n\r\nma n6\r\n"
                     b"ma n1 Mx\r\nma n1 MII\r\nma n1 D-1\r\nma n1 Dx\r\nma n1 Jx\r\n"
                     b"ma n1 v v\r\nma n1 O123456789012345678901234567890123\r\n"
                     b"ma n5 C1 v\r\n")
    # base64 keys
    add("base64", b"ms Zm9v 2 b k c\r\nhi\r\nmg Zm9v b k v\r\nmg Zm9v b v\r\n"
                  b"get foo\r\nmg Zm9v b k\r\nmg AAEC b k v\r\nms AAEC 1 b k\r\n!\r\n"
                  b"mg AAEC b k v s\r\nmd AAEC b k\r\nmg AAEC b k\r\nma AAEC b N0 k v\r\n")
    add("base64 errors", b"mg Zm9 b\r\nmg Z=9v b\r\nmg ==== b\r\nmg Zm9v=== b\r\n"
                         b"ms Zm9 1 b\r\nx\r\nmd Zm9 b\r\nma Zm9 b\r\nme Zm9 b\r\n"
                         b"mg Zm*9v b v\r\n")
    # errors
    long_key = b"k" * 251
    add("key too long", b"mg " + long_key + b" v\r\nms " + long_key + b" 1\r\nx\r\n"
                        b"md " + long_key + b"\r\nma " + long_key + b"\r\nme " + long_key +
                        b"\r\nmg " + b"k" * 250 + b" v\r\n")
    flags17 = b" ".join(bytes([ch]) for ch in b"vsctfhlkqu") + b" Oa Pb Lc T1 N1 R1 b"
    add("too many flags", b"mg foo " + flags17 + b"\r\nmg foo " + flags17 + b" Ex\r\n"
                          b"ms foo 1 " + flags17 + b"\r\nx\r\nms foo 1 a b c d e f g h i j k l m"
                          b" n o p q\r\nx\r\nmd foo " + flags17 + b" Q\r\nma foo " +
                          flags17 + b" Q\r\n")
    add("flag errors", b"mg foo v v\r\nmg foo !\r\nmg foo Tx\r\nmg foo N\r\nmg foo R1x\r\n"
                       b"mg foo \x80\r\nmg foo Tx !\r\nmg foo ! Tx\r\nmg foo C1 Cx\r\n"
                       b"mg foo Fx\r\nmg foo b Tx\r\nmg foo Tx b\r\nmg foo S\r\n"
                       b"mg foo T99999999999\r\nmg foo T4294967396 t\r\n")
    add("opaque", b"mg foo O12345678901234567890123456789012 v\r\n"
                  b"mg foo O123456789012345678901234567890123 v\r\n"
                  b"mg nope O123456789012345678901234567890123\r\n"
                  b"ms o1 1 O123456789012345678901234567890123\r\nx\r\n"
                  b"ms o1 1 O123456789012345678901234567890123 MX\r\nx\r\nmg o1\r\n")
    add("ms datalen", b"ms k abc\r\nx\r\nms k -1\r\nms k 1x\r\nx\r\n"
                      b"ms k 4294967297\r\nx\r\nmg k v\r\n")
    add("ms bad chunk", b"ms bc 2\r\nhiX\r\nmg bc v\r\nms bc 2 q\r\nhi\rX\r\nmg bc\r\n"
                        b"ms bc 0\r\nXY\r\nmg bc v\r\n")
    add("ms too large", b"ms big 1 T0\r\nx\r\nms big %d T0\r\n" % BIG + b"y" * BIG +
                        b"\r\nmg big v\r\nms big %d MA\r\n" % BIG + b"z" * BIG + b"\r\n")
    add("ms flag error swallows", b"ms sw 3 !\r\nmg sw\r\nms sw 3 Tx\r\nabc\r\nmg sw v\r\n")
    add("me", b"me nope\r\nme\r\nme nope b\r\nme Zm9v b c\r\n")
    # quiet mode: a pipelined burst ending in mn
    add("quiet burst", b"ms q1 1 q\r\na\r\nms q2 1 q O2 k\r\nb\r\nmg q1 q v k\r\nmg qx q v k\r\n"
                       b"mg q2 q v O4\r\nmd qx q\r\nmd q1 q\r\nma qn q\r\nma qn q N0 J1\r\n"
                       b"ma qn q\r\nmg qn q v\r\nms q2 1 q ME\r\nc\r\nmg q1 q\r\nmn\r\n")
    add("mixed with classic", b"set cl 0 0 2\r\nab\r\nmg cl v f c\r\nms cl 2 F9\r\ncd\r\n"
                              b"gets cl\r\nmd cl\r\nget cl\r\n")
    return c


def connect(host, port):
    deadline = time.time() + 10
    while True:
        try:
            return socket.create_connection((host, port), timeout=10)
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def exchange(host, port, script):
    s = connect(host, port)
    s.sendall(script)
    want = sum(1 for line in script.split(b"\n") if line.lstrip(b" ")[:3] in (b"mn\r", b"mn "))
    got = b""
    deadline = time.time() + 20
    while got.count(b"MN\r\n") < want and time.time() < deadline:
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            break
        if not chunk:
            break
        got += chunk
    s.close()
    return got


TICK = re.compile(rb"^([tl])(\d+)$")


def same(a, b):
    """Equal, but for t/l flags one second apart on the same reply line."""
    if a == b:
        return True
    la, lb = a.split(b"\r\n"), b.split(b"\r\n")
    if len(la) != len(lb):
        return False
    for x, y in zip(la, lb):
        if x == y:
            continue
        tx, ty = x.split(b" "), y.split(b" ")
        if len(tx) != len(ty) or tx[0] not in (b"HD", b"VA"):
            return False
        for u, v in zip(tx, ty):
            mu, mv = TICK.match(u), TICK.match(v)
            if u == v:
                continue
            if not (mu and mv and mu.group(1) == mv.group(1) and
                    abs(int(mu.group(2)) - int(mv.group(2))) <= 1):
                return False
    return True


VERBOSE = False


def main():
    global VERBOSE
    args = sys.argv[1:]
    if args and args[0] == "-v":
        VERBOSE = True
        args = args[1:]
    host, mport, wport = args[0], int(args[1]), int(args[2])
    failed = 0
    for name, script in cases():
        a = exchange(host, mport, script)
        b = exchange(host, wport, script)
        if same(a, b):
            print("ok: %s" % name)
            if VERBOSE:
                print("  %r" % a[:3000])
        else:
            failed += 1
            print("FAIL: %s\n  memcached: %r\n  wharf:     %r" % (name, a[:2000], b[:2000]))
    print("%d scripts, %d failed" % (len(cases()), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
