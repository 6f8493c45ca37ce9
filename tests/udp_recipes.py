#!/usr/bin/env python3
"""udp_recipes.py - drives the UDP recipes of docs/cookbook.md in a real
wharfd with Python sockets (tests/check_recipes.sh builds the modules from
the page and runs this):

  defer:  a reply after a 200 ms blocking job (wharf_dgram_keep,
          wharf_queue_work, wharf_udp_send from the job's done), from the
          listener's port, 20 at once each answered once;
  relay:  a timer-flushed relay: lines buffered per worker reach a Python
          upstream as one datagram, and the upstream's answer comes back to
          the worker that opened the outbound socket (wharf_udp_open);
  guard:  the relay pointed at a privileged upstream port (1000): the send
          guard refuses the outbound socket (EACCES, logged).

Usage: udp_recipes.py WHARFD DEFER_SO RELAY_SO TMPDIR.  Prints one line per
check ("ok ..." or "not ok ..."); exits 1 when one failed.  Every wait is
bounded; the wharfd it starts is stopped by its pid.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time

wharfd, defer_so, relay_so, tmp = sys.argv[1:5]
failed = 0


def check(cond, what):
    global failed
    print(("ok " if cond else "not ok ") + what)
    if not cond:
        failed += 1


class Wharfd:
    def __init__(self, name, listener):
        self.log = os.path.join(tmp, f"udp-{name}.log")
        conf = os.path.join(tmp, f"udp-{name}.json")
        listener = dict({"name": "u", "protocol": "udp", "port": 0}, **listener)
        with open(conf, "w") as f:
            json.dump({"workers": 2, "shutdown_timeout_ms": 2000, "listeners": [listener]}, f)
        self.logf = open(self.log, "w")
        self.p = subprocess.Popen([wharfd, "-c", conf], stderr=self.logf, stdout=self.logf)
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline and self.p.poll() is None:
            text = open(self.log).read()
            m = re.search(r"listening on udp [^ ]*:(\d+) ", text)
            if m and "started:" in text:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if self.port is None:
            raise SystemExit(f"wharfd did not start: {open(self.log).read()}")

    def text(self):
        return open(self.log).read()

    def stop(self):
        self.p.terminate()
        try:
            status = self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            status = self.p.wait()
        self.logf.close()
        text = self.text()
        check(status == 0 and not re.search(r"fatal signal|Sanitizer|runtime error", text),
              f"wharfd exits cleanly (status {status})")
        return text


def udp(timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(timeout)
    return s


# ---- defer ---------------------------------------------------------------
w = Wharfd("defer", {"handler": defer_so, "options": {"work_ms": 200}})
c = udp()
t0 = time.monotonic()
c.sendto(b"who is 10.0.0.1", ("127.0.0.1", w.port))
data, src = c.recvfrom(2048)
took = time.monotonic() - t0
check(data == b"answer: who is 10.0.0.1", f"defer: the answer ({data!r})")
check(took >= 0.2, f"defer: after the 200 ms job ({took * 1000:.0f} ms)")
check(src[1] == w.port, "defer: from the listener's port")
for i in range(20):
    c.sendto(b"q%d" % i, ("127.0.0.1", w.port))
got = set()
try:
    for _ in range(20):
        got.add(c.recvfrom(2048)[0])
except socket.timeout:
    pass
check(got == {b"answer: q%d" % i for i in range(20)}, f"defer: 20 at once, {len(got)} answered")
c.close()
w.stop()

# ---- relay ---------------------------------------------------------------
upstream, report, client = udp(), udp(), udp()
w = Wharfd("relay", {"handler": relay_so, "options": {
    "upstream_port": upstream.getsockname()[1], "flush_ms": 250,
    "report_port": report.getsockname()[1]}})
for line in (b"a.count:1|c", b"b.count:2|c", b"c.gauge:3|g"):
    client.sendto(line, ("127.0.0.1", w.port))
data, src = upstream.recvfrom(4096)
check(data == b"a.count:1|c\nb.count:2|c\nc.gauge:3|g\n", f"relay: one flush, every line ({data!r})")
upstream.sendto(b"ok", src)
data, rsrc = report.recvfrom(4096)
m = re.fullmatch(rb"worker (\d+) \(on (\d+)\): ok", data)
check(bool(m) and m.group(1) == m.group(2), f"relay: the answer reached the worker that sent ({data!r})")
check(rsrc[1] == w.port, "relay: the report left from the listener's port")
w.stop()
for s in (upstream, report, client):
    s.close()

# ---- guard ---------------------------------------------------------------
w = Wharfd("guard", {"handler": relay_so, "options": {"upstream_port": 1000, "flush_ms": 50}})
c = udp()
c.sendto(b"x:1|c", ("127.0.0.1", w.port))
time.sleep(0.3)
text = w.stop()
check("cannot open the upstream socket: Permission denied" in text,
      "guard: an upstream on privileged port 1000 is refused with EACCES")
c.close()
sys.exit(1 if failed else 0)
