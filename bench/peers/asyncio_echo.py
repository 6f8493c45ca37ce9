"""asyncio_echo.py - the echo server a Python asyncio user would write, in its fastest
pure-Python form: an asyncio.Protocol (TCP) or DatagramProtocol (UDP) on the default event
loop, one thread. Used by bench/run.sh.

    python3 asyncio_echo.py [tcp|udp] [PORT] [LISTENERS]

Binds 127.0.0.1 (PORT 0 = ephemeral; LISTENERS > 1, TCP: that many servers on ports PORT,
PORT+1, ... or all ephemeral), prints "listening on tcp|udp 127.0.0.1:PORT" on stderr for
each. TCP: every chunk received is written back (transport.write; TCP_NODELAY is on by
default in asyncio). Exits on SIGTERM/SIGINT, or after 900 s.
"""
import asyncio
import signal
import sys

HOST = "127.0.0.1"


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport

    def data_received(self, data):
        self.t.write(data)


class DatagramEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.t = transport

    def datagram_received(self, data, addr):
        self.t.sendto(data, addr)


async def main():
    proto = sys.argv[1] if len(sys.argv) > 1 else "tcp"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    listeners = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: done.done() or done.set_result(None))
    loop.call_later(900, lambda: done.done() or done.set_result(None))
    if proto == "udp":
        transport, _ = await loop.create_datagram_endpoint(DatagramEcho, local_addr=(HOST, port))
        bound = [transport.get_extra_info("sockname")[1]]
    else:
        bound = []
        for i in range(listeners):
            server = await loop.create_server(Echo, HOST, port + i if port else 0, backlog=511)
            bound.append(server.sockets[0].getsockname()[1])
    for b in bound:
        print(f"listening on {proto} {HOST}:{b}", file=sys.stderr, flush=True)
    await done


asyncio.run(main())
