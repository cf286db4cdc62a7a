"""uvicorn's httptools protocol, with each response's head and body leaving in one write to the socket.

uvicorn writes an answer's status line and headers as soon as the app sends ``http.response.start``, and its body
when the app sends ``http.response.body``: two ``send`` calls per answer. On loopback and on a busy host each
``send`` is a system call that also wakes the reader, and it runs holding the GIL: for a small model it was the
largest single cost of a served answer (a fifth of the server's time on iris). Here the writes of one turn of the
event loop are joined and written once, when the loop next runs its ready callbacks (or as soon as they pass
``FLUSH_AT``, so a streamed body is never held in memory): the bytes leave before the loop waits for anything else.
"""

from __future__ import annotations

import asyncio
from typing import Any

FLUSH_AT = 64 * 1024  # pending bytes written at once, without waiting for the end of the turn


class CoalescingTransport:
    """An ``asyncio.Transport`` whose writes are joined until the end of the event loop's turn. Everything but
    writing and closing goes to the wrapped transport; closing writes what is pending first, aborting drops it."""

    def __init__(self, inner: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._inner, self._loop = inner, loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))
        self._size += len(data)
        if self._size >= FLUSH_AT:
            self._flush()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending, self._size = [], 0
        if not self._inner.is_closing():  # the client went away: what it would have read is dropped, as before
            self._inner.write(data)

    def get_write_buffer_size(self) -> int:
        return self._size + self._inner.get_write_buffer_size()

    def write_eof(self) -> None:
        self._flush()
        self._inner.write_eof()

    def close(self) -> None:
        self._flush()
        self._inner.close()

    def abort(self) -> None:
        self._pending, self._size = [], 0
        self._inner.abort()

    def __getattr__(self, name: str) -> Any:  # get_extra_info, is_closing, pause_reading, set_protocol...
        return getattr(self._inner, name)


try:  # httptools is optional (uvicorn[standard]); without it uvicorn's pure-Python h11 protocol runs, unchanged
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - every install of this project has it
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

if HttpToolsProtocol is not None:

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        """httptools' protocol writing through a :class:`CoalescingTransport` (module level: ``serve --workers``
        hands it to worker processes by name)."""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

        def eof_received(self) -> None:
            # A client that half-closes after its request (``nc -N``, ``shutdown(SHUT_WR)``) may get the answer in
            # the same turn as its end of stream, and uvicorn then closes the connection: what is pending goes
            # first, or the answer would be dropped.
            self.transport._flush()  # type: ignore[attr-defined]
            super().eof_received()


def protocol_class() -> Any:
    """What to give ``uvicorn.run(http=...)``: the coalescing protocol, or ``"auto"`` without httptools."""
    return CoalescingHttpToolsProtocol if HttpToolsProtocol is not None else "auto"
