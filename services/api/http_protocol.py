"""The HTTP protocol uvicorn serves the API with: httptools' (uvicorn's fast path), with
Nagle's algorithm off.

asyncio turns TCP_NODELAY on only for sockets created with the TCP protocol named; uvicorn
binds the shared socket of several processes (API_WORKERS > 1) without naming it. Nagle's
algorithm then held the second part of every response (the body, after the head) until the
client acknowledged the first, which Linux delays by 40 ms: every request took over 40 ms.
uvloop sets TCP_NODELAY on its own; the protocol keeps it on whatever the loop.
"""

import asyncio
import socket

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
