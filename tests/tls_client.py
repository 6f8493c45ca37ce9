#!/usr/bin/env python3
"""tls_client.py - the Python ssl clients of tests/check_tls.sh.

  tls_client.py DIR ECHO INFO PROXY LINE UPPER BIG HALFCLOSE EOFKEEP PLAIN
      runs every check against those ports and prints "ok: ..." or
      "FAIL: ..." lines, then "ok: all done";
  tls_client.py DIR hold PORT
      opens a TLS connection, echoes once, prints "holding", waits (20 s at
      most) for DIR/release.flag, echoes again: "ok: open connection";
  tls_client.py DIR goodbye PORT
      opens a connection to a "goodbye" listener, prints "holding", and
      expects "bye\\n" and then the server's close_notify: "ok: stop".

DIR holds the certificates check_tls.sh made (ca.crt, alice.crt, ...).
Every socket has a timeout, every loop a bound.
"""
import os
import socket
import ssl
import struct
import sys
import time

DIR = sys.argv[1]
fails = 0


def ok(msg):
    print("ok: " + msg, flush=True)


def fail(msg):
    global fails
    fails += 1
    print("FAIL: " + msg, flush=True)


def context(version=None, cert=None, alpn=None):
    ctx = ssl.create_default_context(cafile=os.path.join(DIR, "ca.crt"))
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    if cert:
        ctx.load_cert_chain(os.path.join(DIR, cert + ".crt"), os.path.join(DIR, cert + ".key"))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def connect(port, ctx=None, sni="localhost", session=None, ragged=False):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return (ctx or context()).wrap_socket(raw, server_hostname=sni, session=session,
                                          suppress_ragged_eofs=ragged)


def read_exact(s, n):
    got = bytearray()
    while len(got) < n:
        b = s.recv(min(65536, n - len(got)))
        if not b:
            break
        got.extend(b)
    return bytes(got)


def read_to_eof(s, limit=1 << 22):
    """Everything until the server's close_notify; raises on a close without it."""
    got = bytearray()
    while len(got) < limit:
        b = s.recv(65536)
        if not b:
            return bytes(got)
        got.extend(b)
    return bytes(got)


def echo_big(port, version, label):
    s = connect(port, context(version))
    data = os.urandom(1 << 20)
    got = bytearray()
    # One thread: an SSL object must not be read and written at once.
    for off in range(0, len(data), 65536):
        s.sendall(data[off:off + 65536])
        got.extend(read_exact(s, len(data[off:off + 65536])))
    if bytes(got) == data:
        ok(f"{label}: 1 MiB echoed byte-exact over {s.version()}")
    else:
        fail(f"{label}: {len(got)} of {len(data)} bytes, equal prefix: "
             f"{bytes(got) == data[:len(got)]}")
    # Our close_notify: the echo handler closes and answers with its own.
    try:
        s.unwrap().close()
        ok(f"{label}: close_notify answered by close_notify")
    except (ssl.SSLError, OSError) as e:
        fail(f"{label}: unwrap: {e!r}")


# ---- memory-BIO clients: byte-level control of the records ---------------------------

class Mem:
    def __init__(self, port, ctx=None, sni="localhost"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = (ctx or context()).wrap_bio(self.inc, self.out, server_hostname=sni)
        for _ in range(100):
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self.fill()
        self.flush()

    def flush(self, step=None):
        data = self.out.read()
        if step:
            for i in range(0, len(data), step):
                self.sock.sendall(data[i:i + step])
        elif data:
            self.sock.sendall(data)

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the socket")
        self.inc.write(data)

    def write(self, data, step=None):
        self.obj.write(data)
        self.flush(step)

    def read(self, n):
        """Up to n bytes; returns (bytes, how it ended: "n", "close_notify", "eof")."""
        got = bytearray()
        for _ in range(100000):
            if len(got) >= n:
                return bytes(got), "n"
            try:
                got.extend(self.obj.read(n - len(got)))
            except ssl.SSLWantReadError:
                self.flush()
                try:
                    self.fill()
                except EOFError:
                    return bytes(got), "eof"
            except ssl.SSLZeroReturnError:
                return bytes(got), "close_notify"
        return bytes(got), "bound"


def check_half_close_eofkeep(port):
    """Our close_notify is the handler's EOF; it answers after it."""
    m = Mem(port)
    m.write(b"question")
    try:
        m.obj.unwrap()
    except ssl.SSLWantReadError:
        pass
    m.flush()
    got, how = m.read(100)
    if got == b"late\n" and how == "close_notify":
        ok("half-close: our close_notify reached on_eof; its late answer, then close_notify")
    else:
        fail(f"half-close (eofkeep): {got!r} ended by {how}")


def check_record_byte_by_byte(port):
    m = Mem(port)
    t0 = time.monotonic()
    m.write(b"y" * 16384, step=1)
    got, how = m.read(16384)
    if got == b"y" * 16384:
        ok(f"a 16 KiB record sent byte by byte is served "
           f"({time.monotonic() - t0:.2f} s)")
    else:
        fail(f"16 KiB record byte by byte: {len(got)} bytes, {how}")


def check_split_every_byte(port):
    m = Mem(port)
    req = b"a\nbb\nccc\n"
    for i in range(len(req)):
        m.write(req[i:i + 1])  # one record per byte
    want = b"ok a\nok bb\nok ccc\n"
    got, how = m.read(len(want))
    if got == want:
        ok("contract over TLS: a request split at every byte (one record each)")
    else:
        fail(f"split at every byte: {got!r} ({how})")
    # And one record carrying the three lines, sent a byte at a time.
    m.write(req, step=1)
    got, how = m.read(len(want))
    if got == want:
        ok("contract over TLS: one record split at every TCP byte")
    else:
        fail(f"record split at every byte: {got!r} ({how})")


# ---- the checks ------------------------------------------------------------------------

def main_checks(ports):
    echo, info, proxy, line, upper, big, halfclose, eofkeep, plain = ports
    echo_big(echo, ssl.TLSVersion.TLSv1_3, "Python ssl TLS 1.3")
    echo_big(echo, ssl.TLSVersion.TLSv1_2, "Python ssl TLS 1.2")

    # What the handler sees.
    s = connect(info, context(cert="alice", alpn=["h2"]))
    s.sendall(b"info\n")
    got = s.recv(4096).decode()
    want = ("tls TLSv1.3 TLS_AES_128_GCM_SHA256 alpn=h2 sni=localhost "
            "subject=/CN=alice/O=wharf tests verified=1 resumed=0\n")
    ok("wharf_conn_tls_info: " + got.strip()) if got == want else \
        fail(f"wharf_conn_tls_info: {got!r}, wanted {want!r}")
    s.close()
    ctx12 = context(ssl.TLSVersion.TLSv1_2)
    ctx12.check_hostname = False  # no SNI
    s = connect(info, ctx12, sni=None)
    s.sendall(b"info\n")
    first = s.recv(4096).decode()
    session = s.session
    s.close()
    s = connect(info, ctx12, sni=None, session=session)
    s.sendall(b"info\n")
    got = s.recv(4096).decode()
    s.close()
    if "sni= " in first and "resumed=0" in first and "resumed=1" in got and \
            got.startswith("tls TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256 alpn= sni= subject= verified=0"):
        ok("TLS 1.2 without SNI, then a resumed session: " + got.strip())
    else:
        fail(f"resumption: {first!r} then {got!r}")
    raw = socket.create_connection(("127.0.0.1", plain), timeout=10)
    raw.sendall(b"info\n")
    got = raw.recv(100)
    raw.close()
    ok("plain TCP: -ENOTSUP") if got == b"tls -ENOTSUP\n" else fail(f"plain: {got!r}")

    # Half-close both ways.
    check_half_close_eofkeep(eofkeep)
    s = connect(halfclose)
    s.sendall(b"bye\n")
    try:
        got = read_to_eof(s)
        ok("wharf_shutdown_write sends close_notify after the output") if got == b"ok\n" \
            else fail(f"shutdown_write: {got!r}")
        s.sendall(b"after\n")  # reading goes on at the server
        ok("the client may still send after the server's close_notify")
    except (ssl.SSLError, OSError) as e:
        fail(f"shutdown_write: {e!r}")
    s.close()

    # The contract over TLS.
    check_split_every_byte(line)
    s = connect(upper)
    data = bytes(os.urandom(1)[0] % 26 + 97 for _ in range(200000))
    got = bytearray()
    for off in range(0, len(data), 50000):
        s.sendall(data[off:off + 50000])
        got.extend(read_exact(s, len(data[off:off + 50000])))
    ok("partial consumption over TLS (4096 a call): 200000 bytes upper-cased") \
        if bytes(got) == data.upper() else fail(f"upper: {len(got)} bytes")
    s.close()
    s = connect(big)
    s.sendall(b"1\n2\n3\n")
    got = read_exact(s, 3 * 65537)
    ok("back-pressure over TLS: three 64 KiB answers, one at a time (on_drain)") \
        if got == (b"x" * 65536 + b"\n") * 3 else fail(f"big: {len(got)} bytes")
    s.close()

    # PROXY v2 in clear before the ClientHello.
    raw = socket.create_connection(("127.0.0.1", proxy), timeout=10)
    addrs = socket.inet_aton("10.1.2.3") + socket.inet_aton("127.0.0.1") + \
        struct.pack("!HH", 4567, proxy)
    raw.sendall(b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", 12) + addrs)
    s = context().wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"hi\n")
    got = s.recv(100)
    ok("PROXY v2 then TLS: " + got.decode().strip()) if got == b"peer 10.1.2.3:4567 hi\n" \
        else fail(f"PROXY + TLS: {got!r}")
    s.close()

    # Hostile clients, while a good one keeps being served.
    good = connect(echo)
    good.sendall(b"first\n")  # (past handshake_ms's wait for a first byte)
    read_exact(good, 6)
    closed = 0
    t_garbage = time.monotonic()
    for i in range(20):
        g = socket.create_connection(("127.0.0.1", echo), timeout=5)
        g.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            for _ in range(10):
                if not g.recv(4096):
                    closed += 1
                    break
        except ConnectionResetError:
            closed += 1
        g.close()
    print(f"garbage_seconds {int(time.monotonic() - t_garbage) + 1}", flush=True)
    good.sendall(b"still here\n")
    ok(f"garbage instead of a ClientHello: {closed} of 20 closed; others unaffected") \
        if closed == 20 and read_exact(good, 11) == b"still here\n" else \
        fail(f"garbage: {closed} of 20 closed")
    stall = socket.create_connection(("127.0.0.1", echo), timeout=10)
    stall.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00]) + b"\x01\x00\x01\xfc\x03\x03")
    t0 = time.monotonic()
    try:
        while stall.recv(4096):
            pass
    except (ConnectionResetError, socket.timeout):
        pass
    took = time.monotonic() - t0
    ok(f"a handshake stalled midway is closed at handshake_ms ({took:.2f} s)") \
        if 0.7 <= took <= 6.0 else fail(f"stalled handshake closed after {took:.2f} s")
    stall.close()
    half = socket.create_connection(("127.0.0.1", echo), timeout=10)
    half.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00]) + b"\x01")
    half.close()  # closed mid-handshake: counted as "eof", no log line
    check_record_byte_by_byte(echo)
    s = connect(echo)
    s.sendall(b"no close_notify\n")
    read_exact(s, 16)
    s.close()  # Python's close sends no close_notify
    good.sendall(b"and again\n")
    ok("a close without close_notify hurts no one") if read_exact(good, 10) == b"and again\n" \
        else fail("after a close without close_notify")
    good.close()
    # SNI names for the access log: rsa.test on the echo listener.
    s = connect(echo, context(), sni="rsa.test")
    try:
        s.sendall(b"x\n")
    except ssl.SSLError:
        pass
    s.close()


def main():
    if sys.argv[2] == "hold":
        port = int(sys.argv[3])
        s = connect(port)
        s.sendall(b"one\n")
        if read_exact(s, 4) != b"one\n":
            fail("hold: first echo")
        print("holding", flush=True)
        flag = os.path.join(DIR, "release.flag")
        for _ in range(400):
            if os.path.exists(flag):
                break
            time.sleep(0.05)
        s.sendall(b"two\n")
        got = read_exact(s, 4)
        ok("open connection echoes after the reloads") if got == b"two\n" else \
            fail(f"hold: second echo {got!r}")
        s.close()
        return
    if sys.argv[2] == "goodbye":
        s = connect(int(sys.argv[3]))
        s.sendall(b"x\n")
        read_exact(s, 2)
        print("holding", flush=True)
        try:
            got = read_to_eof(s)
            ok("stop: bye then close_notify") if got == b"bye\n" else fail(f"stop: {got!r}")
        except (ssl.SSLError, OSError) as e:
            fail(f"stop: {e!r}")
        return
    main_checks([int(p) for p in sys.argv[2:11]])
    if not fails:
        ok("all done")


main()
