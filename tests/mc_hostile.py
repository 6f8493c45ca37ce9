#!/usr/bin/env python3
"""mc_hostile.py - hostile input to the memcache handler, side by side with
memcached 1.6: every malformed line of memcached's t/malicious-commands.t
and t/strtol-testing.t, and a list of our own (huge, negative and 2^63
lengths, flags and numbers, embedded NULs, lines of 2048, 2049 and 1 MiB
bytes without an end, binary headers with huge bodies or a bad magic, meta
lines with 100 flags).  Each case goes, on a new connection, to a fresh
memcached and to wharfd (one of each for the whole run, flushed before
every case); the two replies (every byte until the connection is quiet or
closed, and whether it closed) must be the same, or, where
tests/mc_hostile_expect.txt names a deviation docs/memcache.md documents,
wharf's must be the one written there.  After every case both servers must
still answer a new connection.

    mc_hostile.py WHARFD MEMCACHED EXPECT_FILE [CASE...]

The expectations file has one line per case that is not simply "the
same as memcached":
    NAME deviation REPLY      wharf answers REPLY (a Python bytes literal,
                              "<closed>" appended when it hangs up)
    NAME pending OWNER WHAT   compared and reported, but a difference does
                              not fail the run (work in progress)
Exit status: 0 when every case holds, 1 otherwise.
"""
import ast
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

QUIET_S = 0.4        # a reply is complete after this long without a byte
CASE_S = 8.0         # the most one case may take
REPLY_CAP = 4 << 20  # bytes of reply kept


def binreq(op, key=b'', extras=b'', value=b'', magic=0x80, bodylen=None,
           keylen=None, extlen=None):
    """A binary-protocol request header (and body)."""
    bl = len(key) + len(extras) + len(value) if bodylen is None else bodylen
    kl = len(key) if keylen is None else keylen
    el = len(extras) if extlen is None else extlen
    return struct.pack('>BBHBBHIIQ', magic, op, kl, el, 0, 0, bl, 0, 0) + extras + key + value


K250 = b'k' * 250
K251 = b'k' * 251
END = b'get nokey\r\n'  # a reply ("END") that shows the connection carries on

CASES = [
    # t/malicious-commands.t: hung up on, nothing said.
    ('http-get', b'GET / HTTP/1.0\r\n'),
    ('http-put', b'PUT /asdf/asd/fasdfasdf/sadf HTTP/1.1\r\n'),
    ('http-delete', b'DELETE HTTP/1.1\r\n'),
    # t/strtol-testing.t
    ('verbosity-invalid', b'verbosity invalid\r\n' + END),
    ('slabs-automove-invalid', b'slabs automove invalid\r\n' + END),
    # storage lengths
    ('set-len-2^31-1', b'set k 0 0 2147483647\r\n' + END),
    ('set-len-2^31', b'set k 0 0 2147483648\r\n' + END),
    ('set-len-2^32', b'set k 0 0 4294967296\r\n' + END),
    ('set-len-2^63', b'set k 0 0 9223372036854775808\r\n' + END),
    ('set-len-2^64', b'set k 0 0 18446744073709551616\r\n' + END),
    ('set-len-neg', b'set k 0 0 -1\r\n' + END),
    ('set-len-neg-2^31', b'set k 0 0 -2147483648\r\n' + END),
    ('set-len-junk', b'set k 0 0 12abc\r\n' + END),
    ('set-len-over-max', b'set k 0 0 2097152\r\n' + b'x' * 2097152 + b'\r\n' + END),
    ('set-missing-data-end', b'set k 0 0 1\r\nxyz\r\n' + END),
    # flags and exptime
    ('set-flags-neg', b'set k -1 0 1\r\nx\r\n' + END),
    ('set-flags-2^32', b'set k 4294967296 0 1\r\nx\r\n' + END),
    ('set-flags-2^64', b'set k 18446744073709551616 0 1\r\nx\r\n' + END),
    ('set-flags-junk', b'set k abc 0 1\r\nx\r\n' + END),
    ('set-flags-hex', b'set k 0x10 0 1\r\nx\r\n' + END),
    ('set-exptime-junk', b'set k 0 abc 1\r\nx\r\n' + END),
    ('set-exptime-2^63', b'set k 0 9223372036854775808 1\r\nx\r\n' + END),
    ('set-too-many-tokens', b'set k 0 0 1 noreply a b c d e f\r\nx\r\n' + END),
    ('set-too-few-tokens', b'set k 0 0\r\n' + END),
    ('touch-exptime-junk', b'touch k abc\r\n' + END),
    ('gat-exptime-junk', b'gat abc k\r\n' + END),
    # numbers
    ('incr-2^64', b'set n 0 0 1\r\n5\r\nincr n 18446744073709551616\r\n' + END),
    ('incr-neg', b'set n 0 0 1\r\n5\r\nincr n -1\r\n' + END),
    ('incr-junk', b'set n 0 0 1\r\n5\r\nincr n abc\r\n' + END),
    ('decr-2^63', b'set n 0 0 1\r\n5\r\ndecr n 9223372036854775808\r\nget n\r\n'),
    ('incr-long-value', b'set n 0 0 40\r\n' + b'1' * 40 + b'\r\nincr n 1\r\n' + END),
    ('cas-unique-junk', b'cas k 0 0 1 abc\r\nx\r\n' + END),
    ('cas-unique-neg', b'cas k 0 0 1 -1\r\nx\r\n' + END),
    ('cas-unique-2^64', b'cas k 0 0 1 18446744073709551616\r\nx\r\n' + END),
    ('delete-time-noreply', b'delete k 10 noreply\r\n' + END),
    ('delete-junk', b'delete k junk\r\n' + END),
    ('flush-neg', b'flush_all -1\r\n' + END),
    ('flush-junk', b'flush_all abc\r\n' + END),
    ('verbosity-none', b'verbosity\r\n' + END),
    # NULs and odd bytes
    ('nul-in-get', b'get k\x00\r\n' + END),
    ('nul-in-key', b'set k\x00x 0 0 1\r\nx\r\n' + END),
    ('nul-line', b'\x00\x00\x00\r\n' + END),
    ('nul-in-command', b'ver\x00sion\r\n' + END),
    ('high-bytes', b'\xff\xfe\xfd\r\n' + END),
    ('empty-line', b'\r\n' + END),
    ('blank-line', b'   \r\n' + END),
    ('bare-newline', b'\n' + END),
    ('get-no-key', b'get\r\n' + END),
    ('gets-no-key', b'gets\r\n' + END),
    # keys and line lengths
    ('key-250', b'set ' + K250 + b' 0 0 1\r\nx\r\nget ' + K250 + b'\r\n'),
    ('key-251-set', b'set ' + K251 + b' 0 0 1\r\nx\r\n' + END),
    ('key-251-get', b'get ' + K251 + b'\r\n' + END),
    ('get-100-keys', b'get ' + b' '.join(b'k%d' % i for i in range(100)) + b'\r\n'),
    ('line-2048-no-end', b'x' * 2048),
    ('line-2049-no-end', b'x' * 2049),
    ('line-1MiB-no-end', b'x' * (1 << 20)),
    ('line-2048-then-end', b'x' * 2046 + b'\r\n' + END),
    ('get-line-1MiB-no-end', b'get ' + b'k ' * (1 << 19)),
    ('set-line-4096', b'set k 0 0 1 ' + b' ' * 4096 + b'\r\nx\r\n' + END),
    # binary protocol headers
    ('bin-get-huge-body', binreq(0x00, b'k', bodylen=0xffffffff)),
    ('bin-set-2MiB-body', binreq(0x01, b'k', struct.pack('>II', 0, 0), bodylen=2 << 20)),
    ('bin-keylen-over-body', binreq(0x00, b'k', keylen=200, bodylen=1)),
    ('bin-extlen-over-body', binreq(0x01, b'k', extlen=200, bodylen=1)),
    ('bin-bad-magic-0x81', binreq(0x00, b'k', magic=0x81) + END),
    ('bin-bad-opcode', binreq(0xee, b'k')),
    ('bin-short-header', binreq(0x0a)[:10]),
    ('bin-noop', binreq(0x0a)),
    # meta lines
    ('meta-mg-100-flags', b'mg k ' + b' '.join(b'O%d' % i for i in range(100)) + b'\r\n' + END),
    ('meta-ms-100-flags', b'ms k 1 ' + b' '.join(b'T%d' % i for i in range(100)) + b'\r\nx\r\n' + END),
    ('meta-mg-no-key', b'mg\r\n' + END),
    ('meta-ms-len-junk', b'ms k abc\r\nx\r\n' + END),
    ('meta-ms-len-neg', b'ms k -1\r\n' + END),
    ('meta-ms-len-2^31-1', b'ms k 2147483647\r\n' + END),
    ('meta-ma-delta-neg', b'ma k N0 D-1\r\n' + END),
    ('meta-mg-key-251', b'mg ' + K251 + b' v\r\n' + END),
    ('meta-mg-bad-base64', b'mg !!!! b v\r\n' + END),
    ('meta-mn-extra', b'mn extra junk\r\n' + END),
    ('meta-bad-flag', b'mg k ~ \x01 v\r\n' + END),
    ('meta-opaque-long', b'mg k O' + b'9' * 200 + b'\r\n' + END),
    # operators' commands with bad arguments
    ('stats-junk', b'stats ' + b'x' * 300 + b'\r\n' + END),
    ('stats-detail-junk', b'stats detail junk\r\n' + END),
    ('lru-crawler-junk', b'lru_crawler metadump junk\r\n' + END),
    ('watch-junk', b'watch junk\r\n' + END),
]


def start(argv, log):
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def connect(port, wait_s=0.0):
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return socket.create_connection(('127.0.0.1', port), timeout=2)
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def exchange(port, data):
    """Sends data on a new connection while reading; returns the reply
    bytes, with b'<closed>' appended when the server hung up."""
    s = connect(port)
    s.setblocking(False)
    out, sent, closed = bytearray(), 0, False
    deadline = time.monotonic() + CASE_S
    last = time.monotonic()
    while time.monotonic() < deadline:
        wr = [s] if sent < len(data) else []
        r, w, _ = select.select([s], wr, [], 0.05)
        if w:
            try:
                sent += s.send(data[sent:sent + 65536])
                last = time.monotonic()
            except (BrokenPipeError, ConnectionResetError):
                sent = len(data)
        if r:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b''
            if not chunk:
                closed = True
                break
            if len(out) < REPLY_CAP:
                out += chunk
            last = time.monotonic()
        elif sent >= len(data) and time.monotonic() - last > QUIET_S:
            break
    s.close()
    return bytes(out) + (b'<closed>' if closed else b'')


def normalize(reply):
    return re.sub(rb'VERSION [^\r\n]*', b'VERSION *', reply)


def still_serving(port):
    try:
        s = connect(port)
        s.sendall(b'version\r\n')
        s.settimeout(5)
        got = s.recv(100)
        s.close()
        return got.startswith(b'VERSION ')
    except OSError:
        return False


def flush(port):
    s = connect(port)
    s.sendall(b'flush_all\r\n')
    s.settimeout(5)
    s.recv(100)
    s.close()


def show(b, n=100):
    text = repr(b)
    return text if len(text) <= n else text[:n] + '...(%d bytes)' % len(b)


def read_expect(path):
    exp = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            name, state, rest = (line.split(None, 2) + ['', ''])[:3]
            exp[name] = (state, rest)
    return exp


def main():
    wharfd, memcached, expect_path = sys.argv[1:4]
    only = sys.argv[4:]
    exp = read_expect(expect_path)
    names = {c[0] for c in CASES}
    bad = [n for n in exp if n not in names]
    tmp = tempfile.mkdtemp(prefix='wharf-hostile.')
    conf = os.path.join(tmp, 'wharfd.json')
    with open(conf, 'w') as f:
        f.write('{"workers": 2, "shutdown_timeout_ms": 1000, "listeners": [\n'
                ' {"name": "memcache", "address": "127.0.0.1", "port": 0, "handler": "memcache",\n'
                '  "timeouts": {"idle_ms": 0}, "buffers": {"max_input": 2097152},\n'
                '  "options": {"memory_limit": 67108864, "item_size_max": 1048576}}]}\n')
    wlog = open(os.path.join(tmp, 'wharfd.log'), 'w+')
    mlog = open(os.path.join(tmp, 'memcached.log'), 'w+')
    procs = []
    failed = pending = passed = 0
    try:
        w = start([wharfd, '-c', conf], wlog)
        procs.append(w)
        wport = None
        for _ in range(300):
            wlog.seek(0)
            m = re.search(r'listening on tcp [^ ]*:(\d+) ', wlog.read())
            if m:
                wport = int(m.group(1))
                break
            if w.poll() is not None:
                break
            time.sleep(0.05)
        if not wport:
            wlog.seek(0)
            print('FAIL: wharfd did not start: ' + wlog.read()[-500:])
            return 1
        mport = free_port()
        user = ['-u', 'root'] if os.geteuid() == 0 else []
        m = start([memcached, '-l', '127.0.0.1', '-p', str(mport), '-U', '0'] + user, mlog)
        procs.append(m)
        connect(mport, wait_s=10).close()
        for n in bad:
            print('FAIL: %s: in %s but no such case' % (n, expect_path))
            failed += 1
        for name, data in CASES:
            if only and name not in only:
                continue
            flush(mport)
            flush(wport)
            want = normalize(exchange(mport, data))
            got = normalize(exchange(wport, data))
            state, rest = exp.get(name, ('same', ''))
            if state == 'deviation':
                want = ast.literal_eval(rest.split('  #')[0].strip())
            alive = still_serving(wport)
            malive = still_serving(mport)
            ok = got == want and alive
            what = 'memcached' if state != 'deviation' else 'documented'
            detail = '' if ok else ' (%s: %s; wharf: %s%s)' % (
                what, show(want), show(got), '' if alive else '; wharf no longer serves')
            if not malive:
                print('note: memcached stopped serving after %s; restarting it' % name)
                m.kill()
                m.wait()
                mport = free_port()
                m = start([memcached, '-l', '127.0.0.1', '-p', str(mport), '-U', '0'] + user, mlog)
                procs.append(m)
                connect(mport, wait_s=10).close()
            if state == 'pending':
                if ok:
                    print('PENDING-PASS: %s: holds now, mark it done (%s)' % (name, rest))
                else:
                    pending += 1
                    print('PENDING-FAIL: %s [%s]%s' % (name, rest, detail))
            elif ok:
                passed += 1
                print('PASS: %s%s' % (name, ' (documented deviation)' if state == 'deviation' else ''))
            else:
                failed += 1
                print('FAIL: %s%s' % (name, detail))
            if not alive:
                print('FAIL: wharfd stopped serving; the rest is not run')
                return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        wlog.close()
        mlog.close()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    print('%d passed, %d failed, %d pending' % (passed, failed, pending))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
