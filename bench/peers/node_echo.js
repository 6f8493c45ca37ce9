// node_echo.js - the echo server a Node.js user would write: the `net` module (TCP) or the
// `dgram` module (UDP), one process, one event loop. Used by bench/run.sh.
//
//   node node_echo.js [tcp|udp] [PORT] [LISTENERS]
//
// Binds 127.0.0.1 (PORT 0 = ephemeral; LISTENERS > 1, TCP: that many servers on ports PORT,
// PORT+1, ... or all ephemeral) and prints "listening on tcp|udp 127.0.0.1:PORT" on stderr
// for each. TCP: socket.pipe(socket) with noDelay (as wharfd's default TCP_NODELAY).
// UDP: each datagram is sent back to its sender. Exits on SIGTERM/SIGINT, or after 900 s.
'use strict';
const proto = process.argv[2] || 'tcp';
const port = Number(process.argv[3] || 0);
const listeners = Number(process.argv[4] || 1);
const host = '127.0.0.1';
const say = (p, a) => process.stderr.write(`listening on ${p} ${host}:${a.port}\n`);

if (proto === 'udp') {
  const dgram = require('dgram');
  const s = dgram.createSocket('udp4');
  s.on('message', (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
  s.on('error', () => {});
  s.bind(port, host, () => say('udp', s.address()));
} else {
  const net = require('net');
  for (let i = 0; i < listeners; i++) {
    const srv = net.createServer((c) => {
      c.setNoDelay(true);
      c.on('error', () => c.destroy());
      c.pipe(c);
    });
    srv.listen({ port: port ? port + i : 0, host, backlog: 511 }, () => say('tcp', srv.address()));
  }
}
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
setTimeout(() => process.exit(0), 900 * 1000).unref();
