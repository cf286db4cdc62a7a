"""The response writes of one event-loop turn leave in one socket write (serving/http_protocol.py)."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import ClassVar

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from release_assets.serving.http_protocol import FLUSH_AT, CoalescingTransport, protocol_class
from release_assets_tests.serving import own_loop


class RecordingTransport:
    """The part of an asyncio transport the wrapper calls, recording each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = self.aborted = self.eof = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 5)}.get(name, default)


def test_writes_of_one_turn_leave_together_at_its_end():
    async def go() -> tuple[list[bytes], list[bytes], int]:
        inner = RecordingTransport()
        wrapped = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        wrapped.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        wrapped.write(b"{}")
        during = list(inner.writes)
        pending = wrapped.get_write_buffer_size()
        await asyncio.sleep(0)  # the end of the turn
        return during, inner.writes, pending

    during, after, pending = own_loop.run(go())
    assert during == [] and pending == 40
    assert after == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


def test_a_large_body_is_written_at_the_threshold_not_held():
    async def go() -> list[int]:
        inner = RecordingTransport()
        wrapped = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        for _ in range(5):
            wrapped.write(b"x" * (FLUSH_AT // 2))
        sizes = [len(w) for w in inner.writes]
        await asyncio.sleep(0)
        return sizes + [-1] + [len(w) for w in inner.writes]

    assert own_loop.run(go()) == [FLUSH_AT, FLUSH_AT, -1, FLUSH_AT, FLUSH_AT, FLUSH_AT // 2]


def test_close_writes_what_is_pending_first_and_abort_drops_it():
    async def go() -> tuple[RecordingTransport, RecordingTransport, RecordingTransport]:
        loop = asyncio.get_running_loop()
        closed, aborted, gone = RecordingTransport(), RecordingTransport(), RecordingTransport()
        wrapped = CoalescingTransport(closed, loop)  # type: ignore[arg-type]
        wrapped.write(b"last")
        wrapped.close()
        cut = CoalescingTransport(aborted, loop)  # type: ignore[arg-type]
        cut.write(b"never")
        cut.abort()
        left = CoalescingTransport(gone, loop)  # type: ignore[arg-type]
        left.write(b"never either")
        gone.closing = True  # the client went away before the end of the turn
        await asyncio.sleep(0)
        return closed, aborted, gone

    closed, aborted, gone = own_loop.run(go())
    assert closed.writes == [b"last"] and closed.closing
    assert aborted.writes == [] and aborted.aborted
    assert gone.writes == []


def test_everything_else_is_the_wrapped_transports():
    inner = RecordingTransport()
    wrapped = CoalescingTransport(inner, asyncio.new_event_loop())  # type: ignore[arg-type]
    assert wrapped.get_extra_info("peername") == ("127.0.0.1", 5)
    wrapped.write_eof()
    assert inner.eof and not wrapped.is_closing()


class CountingTransport:
    """The real socket transport, counting the writes that reach it."""

    writes: ClassVar[list[bytes]] = []

    def __init__(self, inner: asyncio.Transport) -> None:
        self._inner = inner

    def write(self, data: bytes) -> None:
        CountingTransport.writes.append(bytes(data))
        self._inner.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def _counting(base: type) -> type:
    class Counting(base):  # type: ignore[misc,valid-type]
        def connection_made(self, transport):  # the socket's transport, counted beneath whatever base wraps it in
            super().connection_made(CountingTransport(transport))

    return Counting


def _serve(app: Starlette, http: type) -> tuple[uvicorn.Server, threading.Thread, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", http=_counting(http))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):  # bounded: 5 s
        if server.started:
            return server, thread, port
        threading.Event().wait(0.01)
    raise AssertionError("server did not start")


def _exchange(port: int, request: bytes, until: bytes) -> bytes:
    """What the client read, until ``until`` ends it."""
    read = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(request)
        while not read.endswith(until):
            chunk = client.recv(1 << 20)
            if not chunk:
                break
            read += chunk
    return read


@pytest.mark.skipif(protocol_class() == "auto", reason="httptools is not installed")
@pytest.mark.parametrize("coalescing", [True, False])
def test_a_served_answer_is_one_socket_write_and_a_stream_still_streams(coalescing):
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    async def small(request):
        return Response(b'{"label":"setosa"}', media_type="application/json")

    async def chunks():
        for i in range(3):
            yield f"part {i}\n".encode()
            await asyncio.sleep(0.05)  # each part leaves in a turn of its own

    async def stream(request):
        return StreamingResponse(chunks(), media_type="text/plain")

    app = Starlette(routes=[Route("/small", small), Route("/stream", stream)])
    server, thread, port = _serve(app, protocol_class() if coalescing else HttpToolsProtocol)
    try:
        CountingTransport.writes = []
        read = _exchange(port, b"GET /small HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", b'"setosa"}')
        assert read.startswith(b"HTTP/1.1 200 OK\r\n") and b"".join(CountingTransport.writes) == read
        # The head and the body: one write through the coalescing transport, two without it.
        assert len(CountingTransport.writes) == (1 if coalescing else 2), CountingTransport.writes
        CountingTransport.writes = []
        read = _exchange(port, b"GET /stream HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", b"0\r\n\r\n")
        assert b"part 0\n" in read and b"part 2\n" in read
        assert len(CountingTransport.writes) >= 3, CountingTransport.writes  # streamed, not held to the end
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.mark.skipif(protocol_class() == "auto", reason="httptools is not installed")
def test_a_client_that_half_closes_after_its_request_still_gets_the_answer():
    """``nc -N``: the request and the end of the stream arrive together; the answer must not be left pending."""

    async def small(request):
        return Response(b"ok", media_type="text/plain")

    server, thread, port = _serve(Starlette(routes=[Route("/small", small)]), protocol_class())
    try:
        for _ in range(20):  # the two arrive in one read only sometimes: try often enough to meet it
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(b"GET /small HTTP/1.1\r\nhost: x\r\n\r\n")
                client.shutdown(socket.SHUT_WR)
                read = b""
                while chunk := client.recv(1 << 16):
                    read += chunk
            assert read.startswith(b"HTTP/1.1 200 OK\r\n") and read.endswith(b"ok"), read
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()
