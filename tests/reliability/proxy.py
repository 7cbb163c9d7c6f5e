"""A TCP proxy that can be cut and restored: outages of shared services, simulated safely.

PostgreSQL on 127.0.0.1:5432 and the MLflow server are shared by everything on the machine:
they are never stopped. A process under test talks to them through this proxy instead, and
the test cuts the proxy (connections reset, new ones refused: what a crashed or partitioned
database looks like from the client) and restores it. The proxy can also cut itself at an
exact point of a conversation: when the client sends bytes that match a pattern (e.g. MLflow's
"set alias" call), before forwarding them.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field


@dataclass
class _Trap:
    pattern: re.Pattern[bytes]
    nth: int
    seen: int = 0
    fired: threading.Event = field(default_factory=threading.Event)


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``, in a thread with its own event loop."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.accepted = 0
        self.refused_while_down = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"fault-proxy-{self.port}")
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._traps: list[_Trap] = []
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def up(self) -> bool:
        return self._server is not None

    # --- control (from any thread) ------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def close(self) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until :meth:`restore`."""
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def cut_when(self, pattern: bytes, nth: int = 1) -> threading.Event:
        """Arm a trap: the ``nth`` time the client sends bytes matching ``pattern`` (a
        regex), the proxy cuts itself before forwarding them. The event is set when it
        fired."""
        trap = _Trap(re.compile(pattern), nth)
        with self._lock:
            self._traps.append(trap)
        return trap.fired

    def _call(self, coro: object) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        future.result(10)

    # --- the loop's side ----------------------------------------------------------------
    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                      reuse_address=True)

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted in the instant of a cut
            self.refused_while_down += 1
            _reset(client_w)
            return
        self.accepted += 1
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(client_w)
            return
        pair = {client_w, upstream_w}
        self._writers |= pair
        try:
            await asyncio.gather(self._pipe(client_r, upstream_w, inspect=True),
                                 self._pipe(upstream_r, client_w, inspect=False))
        finally:
            self._writers -= pair
            for writer in pair:
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    inspect: bool) -> None:
        try:
            while data := await reader.read(65536):
                if inspect and self._sprung(data):
                    await self._cut()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if writer.can_write_eof() and not writer.is_closing():
                with suppress(OSError):
                    writer.write_eof()

    def _sprung(self, data: bytes) -> bool:
        with self._lock:
            for trap in self._traps:
                if not trap.fired.is_set() and trap.pattern.search(data):
                    trap.seen += 1
                    if trap.seen >= trap.nth:
                        trap.fired.set()
                        self._traps.remove(trap)
                        return True
        return False


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a dead peer's kernel would answer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fault_proxy(host: str, port: int) -> Iterator[FaultProxy]:
    proxy = FaultProxy(host, port).start()
    try:
        yield proxy
    finally:
        proxy.close()
