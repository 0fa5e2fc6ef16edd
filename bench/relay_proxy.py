"""The hop alone, for bench/gateway_bench.py --floor: a byte relay in Python (uvloop).

Each client connection gets its own upstream connection, and bytes are copied both ways
as they arrive: no HTTP parsing, no framing, nothing read or decided. What it adds to a
call is what one more process and two more loopback hops cost on this machine, and
nothing else; `bench/floor_proxy.py` adds HTTP handling in Python (uvicorn, httptools,
mcpp's upstream client) on top of it, and `mcpp serve` adds governing the call. (Not a
proxy anyone should deploy: it forwards whatever it is sent.) Run by `gateway_bench.py
--floor`, not by users.

    python3 bench/relay_proxy.py UPSTREAM_PORT PORT
"""

from __future__ import annotations

import asyncio
import socket
import sys


def _nodelay(transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Up(asyncio.Protocol):
    def __init__(self, down: asyncio.Transport):
        self.down = down

    def data_received(self, data: bytes) -> None:
        self.down.write(data)

    def connection_lost(self, exc) -> None:  # noqa: ARG002 (asyncio.Protocol)
        self.down.close()


class _Down(asyncio.Protocol):
    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.up: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport
        _nodelay(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        try:
            up, _ = await asyncio.get_running_loop().create_connection(lambda: _Up(self.transport), "127.0.0.1", self.upstream_port)
        except OSError:
            self.transport.close()
            return
        _nodelay(up)
        self.up = up
        for data in self.pending:
            up.write(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if self.up is None:
            self.pending.append(data)
        else:
            self.up.write(data)

    def connection_lost(self, exc) -> None:  # noqa: ARG002 (asyncio.Protocol)
        if self.up is not None:
            self.up.close()


async def main(upstream_port: int, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: _Down(upstream_port), "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
