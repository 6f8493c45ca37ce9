#!/usr/bin/env python3
"""bench/mc_lru.py - which items a memcached-protocol cache keeps: the
workloads of bench/mc_lru.sh against one server, standard library only.

    mc_lru.py PORT LIMIT_BYTES fill|scan|zipf|zipf+scan

against a freshly started server; prints "name value" lines for mc_lru.sh
to put side by side.  Requests are pipelined in batches (a cache-aside
batch: one multi-get, then a set for every miss), the same batches, from
the same seed, for every server.

  fill      LIMIT ten times over in 100 KB values (keys f0, f1, ...), then
            a get of every key: survivors (how many are left) and newest
            (the share of them that are the most recently set).
  scan      200 keys of 1000 B read twice (a hot set), then five cache-fulls
            of keys set once, the hot keys read again now and then (each once
            per 1.5 cache-fulls): hot_kept, the share of the hot set left.
  zipf      cache-aside over 200,000 keys of 1000 B (the cache holds about
            a tenth), keys drawn from Zipf(0.99): get, and set on a miss;
            the hit ratio of 80,000 requests after a warm-up of as many.
  zipf+scan the same, with one request in four a one-pass scan key (never
            seen before, never asked again): the hit ratio of the Zipf
            requests.
"""
import bisect
import random
import socket
import sys
import time


class Client:
    def __init__(self, port):
        for _ in range(100):  # the server may still be starting: 5 s
            try:
                self.sock = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("no server on port %d" % port)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise SystemExit("server closed the connection")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def get_many(self, keys):
        """The keys found (a set), with one multi-get."""
        self.send(b"get " + b" ".join(keys) + b"\r\n")
        found = set()
        while True:
            line = self.line()
            if line == b"END":
                return found
            parts = line.split()
            if parts[0] != b"VALUE":
                raise SystemExit("unexpected reply %r" % line)
            self.exact(int(parts[3]) + 2)
            found.add(parts[1])

    def set_many(self, keys, value):
        """Sets every key to value, pipelined (noreply), then a round trip."""
        head = b" 0 0 %d noreply\r\n" % len(value)
        tail = value + b"\r\n"
        self.send(b"".join(b"set " + k + head + tail for k in keys) + b"version\r\n")
        line = self.line()
        if not line.startswith(b"VERSION"):
            raise SystemExit("set failed: %r" % line)

    def stat(self, name):
        self.send(b"stats\r\n")
        value = None
        while True:
            line = self.line()
            if line == b"END":
                return value
            parts = line.split()
            if parts[1] == name:
                value = int(parts[2])


def batches(seq, n):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def fill(c, limit):
    value = b"v" * 100000
    n = 10 * limit // len(value)
    keys = [b"f%d" % i for i in range(n)]
    for b in batches(keys, 20):
        c.set_many(b, value)
    found = set()
    for b in batches(keys, 100):
        found |= c.get_many(b)
    survivors = len(found)
    newest = sum(1 for k in keys[n - survivors:] if k in found)
    print("fill_survivors %d" % survivors)
    print("fill_newest %.3f" % (newest / survivors if survivors else 0))


def scan(c, limit):
    value = b"h" * 1000
    hot = [b"hot%d" % i for i in range(200)]
    c.set_many(hot, value)
    c.get_many(hot)
    c.get_many(hot)
    fits = limit // 1100
    every = (3 * fits // 2) // len(hot)
    n = 5 * fits
    h = 0
    for start in range(0, n, every):
        keys = [b"scan%d" % i for i in range(start, min(n, start + every))]
        c.set_many(keys, value)
        c.get_many([hot[h % len(hot)]])
        h += 1
    kept = len(c.get_many(hot))
    print("scan_hot_kept %.3f" % (kept / len(hot)))


def zipf_cdf(n, s):
    acc, cdf = 0.0, []
    for i in range(1, n + 1):
        acc += 1.0 / i ** s
        cdf.append(acc)
    return [x / acc for x in cdf]


def cache_aside(c, requests, value, batch=50):
    """Runs the requests (key, counted) in batches; returns (hits, counted)."""
    hits = counted = 0
    for b in batches(requests, batch):
        keys = list(dict.fromkeys(k for k, _ in b))
        found = c.get_many(keys)
        for k, count in b:
            if count:
                counted += 1
                hits += k in found
        missed = [k for k in keys if k not in found]
        if missed:
            c.set_many(missed, value)
    return hits, counted


def zipf(c, rng, cdf, ops, scan_share):
    value = b"z" * 1000
    scan_seq = [0]

    def draw(count):
        if scan_share and rng.random() < scan_share:
            scan_seq[0] += 1
            return (b"s%d" % scan_seq[0], False)
        return (b"z%d" % bisect.bisect_left(cdf, rng.random()), count)

    cache_aside(c, [draw(False) for _ in range(ops)], value)
    hits, counted = cache_aside(c, [draw(True) for _ in range(ops)], value)
    return hits / counted


def main():
    port, limit, workload = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    c = Client(port)
    if workload == "fill":
        fill(c, limit)
    elif workload == "scan":
        scan(c, limit)
    else:
        cdf = zipf_cdf(200000, 0.99)
        share = 0.25 if workload == "zipf+scan" else 0
        print("%s_hit %.4f" % (workload, zipf(c, random.Random(1), cdf, 80000, share)))
    print("%s_evictions %d" % (workload, c.stat(b"evictions")))


if __name__ == "__main__":
    main()
