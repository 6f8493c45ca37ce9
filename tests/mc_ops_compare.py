#!/usr/bin/env python3
"""mc_ops_compare.py - the memcache handler side by side with the real
memcached 1.6: both are started by the caller (tests/check_mc_ops_compare.sh)
and given here as ports.  Each exchange sends the same bytes to both on a
fresh connection and compares the bytes that come back and whether the
server hung up (the protocol bugs of issue 15 and memcached's t/ files
malicious-commands, strtol-testing, issue_3, issue_70).  Then the operators'
commands by format: the names of `stats` fields (every one wharf prints is
memcached's; the ones memcached prints and wharf leaves out must be the list
docs/memcache.md gives), `stats settings`, `stats items`, `stats slabs` (same
class ids and chunk sizes for the same items), `stats conns`, `stats detail`,
`lru_crawler metadump` and `watch` lines by their shape.

Usage: mc_ops_compare.py MEMCACHED_PORT WHARF_PORT DOCS_FILE
Prints "ok: ..." / "FAIL: ..." lines; exits 1 on any failure.
"""
import re
import socket
import struct
import sys
import time

MC, WH, DOCS = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
failed = 0


def ok(what):
    print("ok: " + what)


def fail(what):
    global failed
    failed += 1
    print("FAIL: " + what)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def exchange(port, data, idle=0.25, limit=5.0):
    """Sends data on a new connection; returns (reply bytes, closed) after
    the reply has been idle for `idle` s (bounded by `limit` s)."""
    s = connect(port)
    s.sendall(data)
    out, closed = b"", False
    end = time.time() + limit
    s.settimeout(idle)
    while time.time() < end:
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not b:
            closed = True
            break
        out += b
    s.close()
    return out, closed


def until(s, end_marks, limit=5.0):
    """Reads from s until the reply ends with one of end_marks."""
    out = b""
    s.settimeout(limit)
    deadline = time.time() + limit
    while time.time() < deadline:
        if any(out.endswith(m) for m in end_marks):
            break
        b = s.recv(65536)
        if not b:
            break
        out += b
    return out


def cmd(s, line, marks=(b"END\r\n",)):
    s.sendall(line)
    return until(s, marks)


def same(name, data, **kw):
    a = exchange(MC, data, **kw)
    b = exchange(WH, data, **kw)
    if a == b:
        ok("%s: %r%s" % (name, a[0][:80], " (closed)" if a[1] else ""))
    else:
        fail("%s: memcached %r, wharf %r" % (name, a, b))


# ---- protocol bugs and memcached's t/ exchanges ---------------------------

same("delete with a hold time and noreply is silent (issue_3)",
     b"add dk 0 0 1\r\nx\r\ndelete dk 10\r\ndelete dk 10 noreply\r\n"
     b"add dk 0 0 1\r\nx\r\ndelete dk noreply\r\nadd dk 0 0 1\r\nx\r\ndelete dk\r\n")
same("set of 2147483647 bytes: bad format, no swallow (issue_70)",
     b"set issue70 0 0 0\r\n\r\nset issue70 0 0 -1\r\n"
     b"set issue70 0 0 4294967295\r\nset issue70 0 0 2147483647\r\nscoobyscoobydoo\r\n"
     b"get issue70\r\n")
same("set of 2147483647 bytes with noreply",
     b"set k70 0 0 2147483647 noreply\r\nversion_x\r\n")
for line in (b"GET / HTTP/1.0", b"PUT /asdf/asd/fasdfasdf/sadf HTTP/1.1",
             b"DELETE HTTP/1.1", b"POST /x HTTP/1.1", b"OPTIONS * HTTP/1.1"):
    same("HTTP request line %r hangs up (malicious-commands)" % line, line + b"\r\n")
same("HTTP request line after a command: answered, then hung up",
     b"get nothere\r\nGET / HTTP/1.0\r\nget nothere\r\n")
same("lowercase get with HTTP/ is a get", b"get / HTTP/1.0\r\n")
same("unknown command with HTTP/ but a dispatched letter",
     b"gxx / HTTP/1.0\r\nsxx HTTP/1.1\r\n")
same("verbosity (strtol-testing)",
     b"verbosity invalid\r\nverbosity 1\r\nverbosity\r\nverbosity 1 noreply\r\n"
     b"verbosity x noreply\r\nverbosity 1 2\r\nverbosity -1\r\n")
same("slabs automove invalid (strtol-testing)",
     b"slabs automove invalid\r\nslabs automove 1\r\nslabs\r\n")
same("incr on a 40-digit zero-padded number",
     b"set n 0 0 40\r\n" + b"0" * 39 + b"7\r\nincr n 5\r\nget n\r\ndecr n 100\r\nget n\r\n")
same("incr on a number past 2^64",
     b"set n2 0 0 21\r\n184467440737095516160\r\nincr n2 1\r\n")
same("incr on odd numbers",
     b"set n3 0 0 2\r\n 5\r\nincr n3 1\r\nset n4 0 0 2\r\n-0\r\nincr n4 1\r\n"
     b"set n5 0 0 3\r\n5 x\r\nincr n5 1\r\nset n6 0 0 2\r\n-5\r\nincr n6 1\r\n"
     b"set n7 0 0 2\r\n5x\r\nincr n7 1\r\nset n8 0 0 0\r\n\r\nincr n8 1\r\n")
big = b"a" * 600000
same("append past the size limit is NOT_STORED",
     b"set ap 0 0 600000\r\n" + big + b"\r\nappend ap 0 0 600000\r\n" + big +
     b"\r\nprepend ap 0 0 600000\r\n" + big + b"\r\nget ap_none\r\n", idle=0.5)
same("bad data chunk", b"set bd 0 0 1\r\nxy\r\nget bd\r\n")
same("delete usage forms",
     b"delete dk2 0\r\ndelete dk2 0 noreply\r\ndelete dk2 x y\r\ndelete dk2 1 2 3\r\n")

# ---- stats, by format -------------------------------------------------------


def stats(port, sub=b""):
    s = connect(port)
    out = cmd(s, b"stats" + (b" " + sub if sub else b"") + b"\r\n")
    s.close()
    return out


def names(out):
    return [l.split(b" ")[1].decode() for l in out.split(b"\r\n") if l.startswith(b"STAT ")]


left_out = set()
m = re.search(r"<!-- stats-left-out: (.*?) -->", open(DOCS).read(), re.S)
if m:
    left_out = set(m.group(1).split())
mc_general, wh_general = names(stats(MC)), names(stats(WH))
extra = [n for n in wh_general if n not in mc_general]
missing = [n for n in mc_general if n not in wh_general]
if extra:
    fail("stats: fields memcached does not print: %s" % extra)
elif set(missing) != left_out:
    fail("stats: left out %s, docs/memcache.md lists %s" % (sorted(missing), sorted(left_out)))
else:
    ok("stats: %d of memcached's %d fields, the rest listed in docs/memcache.md"
       % (len(wh_general), len(mc_general)))
order = [n for n in mc_general if n in wh_general]
if order == wh_general:
    ok("stats: in memcached's order")
else:
    fail("stats order: %s" % wh_general)
st = dict(l.split(b" ")[1:3] for l in stats(WH).split(b"\r\n") if l.startswith(b"STAT "))
if re.match(rb"^\d+\.\d{6}$", st[b"rusage_user"]) and st[b"max_connections"].isdigit():
    ok("stats: rusage and max_connections formats")
else:
    fail("stats formats: %r" % st)

mc_set, wh_set = names(stats(MC, b"settings")), names(stats(WH, b"settings"))
if [n for n in wh_set if n not in mc_set]:
    fail("stats settings: not memcached's: %s" % [n for n in wh_set if n not in mc_set])
else:
    ok("stats settings: %d of memcached's fields" % len(wh_set))

# Same items in both: the same classes, chunk sizes and mem_requested.
load = (b"flush_all\r\nset cls:a 0 0 5\r\nhello\r\nset cls:b 0 0 70000\r\n" + b"b" * 70000 +
        b"\r\nset issue29 0 0 0\r\n\r\nget cls:a\r\n")
for port in (MC, WH):
    exchange(port, load)


def statmap(out):
    return {l.split(b" ")[1]: l.split(b" ")[2] for l in out.split(b"\r\n")
            if l.startswith(b"STAT ")}


mi, wi = statmap(stats(MC, b"items")), statmap(stats(WH, b"items"))
for k in (b"items:1:number", b"items:1:mem_requested", b"items:31:number",
          b"items:31:mem_requested", b"items:1:evicted", b"items:31:reclaimed"):
    if mi.get(k) == wi.get(k) and k in wi:
        ok("stats items %s = %s" % (k.decode(), wi[k].decode()))
    else:
        fail("stats items %s: memcached %r, wharf %r" % (k, mi.get(k), wi.get(k)))
wrong = [k for k in wi if not re.match(rb"^items:\d+:[a-z_]+$", k) or k not in mi]
if wrong:
    fail("stats items: names memcached does not print: %s" % wrong[:5])
ms, ws = statmap(stats(MC, b"slabs")), statmap(stats(WH, b"slabs"))
for k in (b"1:chunk_size", b"31:chunk_size", b"1:used_chunks",
          b"1:get_hits", b"1:cmd_set", b"31:cmd_set"):
    if ms.get(k) == ws.get(k) and k in ws:
        ok("stats slabs %s = %s" % (k.decode(), ws[k].decode()))
    else:
        fail("stats slabs %s: memcached %r, wharf %r" % (k, ms.get(k), ws.get(k)))
wrong = [k for k in ws if k not in ms]
if wrong:
    fail("stats slabs: names memcached does not print: %s" % wrong[:5])
same("stats sizes", b"stats sizes\r\n")

s = connect(WH)
conns = cmd(s, b"stats conns\r\n").split(b"\r\n")
s.close()
pat = re.compile(rb"^STAT \d+:(addr tcp:127\.0\.0\.1:\d+|listen_addr tcp:127\.0\.0\.1:\d+|"
                 rb"state conn_[a-z_]+|secs_since_last_cmd \d+)$")
body = [l for l in conns if l and l != b"END"]
if body and all(pat.match(l) for l in body) and body[-1].split(b" ")[1].endswith(
        b":secs_since_last_cmd"):
    ok("stats conns: memcached's line shapes (%d lines)" % len(body))
else:
    fail("stats conns: %r" % conns)

same("stats detail usage and dump",
     b"stats detail\r\nstats detail foo\r\nstats detail on\r\nset foo:123 0 0 6\r\nfooval\r\n"
     b"get foo:123\r\nget foo:124\r\ndelete foo:125\r\nstats detail dump\r\n"
     b"stats detail off\r\nget foo:123\r\nstats detail dump\r\n")

# ---- lru_crawler and watch ---------------------------------------------------

same("lru_crawler subcommands",
     b"lru_crawler\r\nlru_crawler foo\r\nlru_crawler metadump\r\nlru_crawler crawl all\r\n"
     b"lru_crawler tocrawl x\r\nlru_crawler sleep 2000000\r\n")
for port in (MC, WH):
    exchange(port, b"flush_all\r\nset a%20b 0 0 1\r\nx\r\nset k2 0 100 3\r\nabc\r\nget k2\r\n")
lines = {}
for port in (MC, WH):
    out, _ = exchange(port, b"lru_crawler metadump all\r\n")
    lines[port] = sorted(re.sub(rb"(exp|la|cas)=\d+", rb"\1=N", l)
                         for l in out.split(b"\n") if l.startswith(b"key="))
    if not out.endswith(b"END\r\n"):
        fail("metadump end: %r" % out)
if lines[MC] == lines[WH] and len(lines[WH]) == 2:
    ok("lru_crawler metadump all: %r" % lines[WH])
else:
    fail("metadump: memcached %r, wharf %r" % (lines[MC], lines[WH]))

for port, name in ((MC, "memcached"), (WH, "wharf")):
    w = connect(port)
    w.sendall(b"watch fetchers mutations\r\n")
    first = until(w, (b"OK\r\n",))
    c = connect(port)
    c.sendall(b"set wk 0 0 5 noreply\r\nhello\r\nget wk\r\n")
    until(c, (b"END\r\n",))
    got, deadline = b"", time.time() + 5
    w.settimeout(0.5)
    while time.time() < deadline and not re.search(rb"status=found[^\n]*\n", got):
        try:
            got += w.recv(65536)
        except socket.timeout:
            pass
    w.close()
    c.close()
    ls = got.split(b"\n")
    want = [rb"^ts=\d+\.\d+ gid=\d+ type=item_get key=wk status=not_found clsid=0 cfd=\d+ "
            rb"size=0$",
            rb"^ts=\d+\.\d+ gid=\d+ type=item_store key=wk status=stored cmd=set ttl=0 "
            rb"clsid=1 cfd=\d+ size=5$",
            rb"^ts=\d+\.\d+ gid=\d+ type=item_get key=wk status=found clsid=1 cfd=\d+ size=5$"]
    if first == b"OK\r\n" and len(ls) >= 3 and all(re.match(p, l) for p, l in zip(want, ls)):
        ok("watch on %s: %r" % (name, ls[:3]))
    else:
        fail("watch on %s: %r %r" % (name, first, ls))

# Meta and binary commands show in watch as text ones do (and an append as
# the joined item): the same
# item_get/item_store lines as memcached's (times, ids and fds aside).
def binreq(op, key=b"", extras=b"", value=b""):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0, len(body), 0,
                       0) + body


watched = {}
for port in (MC, WH):
    w = connect(port)
    w.sendall(b"watch fetchers mutations\r\n")
    first = until(w, (b"OK\r\n",))
    exchange(port, b"ms mk 2 T0\r\nhi\r\nmg mk v\r\nmg none v\r\nms mk 1 MA\r\n!\r\n"
                   b"ma mk\r\nappend mk 0 0 1\r\n?\r\nmd mk\r\nmd none q\r\nmn\r\n")
    exchange(port, binreq(0x01, b"bk", struct.pack(">II", 0, 0), b"val") +  # set
                   binreq(0x00, b"bk") + binreq(0x00, b"bnone") +           # get, get miss
                   binreq(0x04, b"bk"))                                     # delete
    got, deadline = b"", time.time() + 3
    w.settimeout(0.3)
    while time.time() < deadline and got.count(b"key=bk") < 4:
        try:
            got += w.recv(65536)
        except socket.timeout:
            pass
    w.close()
    watched[port] = [re.sub(rb"^ts=\S+ gid=\d+ ", b"", re.sub(rb"cfd=\d+", b"cfd=N", l))
                     for l in got.split(b"\n") if l.startswith(b"ts=")]
if watched[MC] == watched[WH] and len(watched[WH]) >= 8:
    ok("watch of meta and binary commands: %d lines alike" % len(watched[WH]))
else:
    fail("watch of meta and binary commands:\nmemcached %r\nwharf     %r"
         % (watched[MC], watched[WH]))

print("%d failed" % failed)
sys.exit(1 if failed else 0)
