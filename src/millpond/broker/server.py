"""The asyncio shell around the sans-I/O protocol core: sockets in, handlers, responses out.

Each connection receives straight into the frame being assembled (BufferedProtocol), decodes
each complete frame and starts its handler at once. Handlers do their state changes before
their first await, so requests take effect in arrival order; their responses are written in
the same order, each as soon as it and everything before it is ready. A connection that has
too many requests in flight, or whose responses are not being drained, stops being read.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import logging
import socket
from typing import Any
from typing import cast

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.apis import APIS
from millpond.broker.apis import SUPPORTED_VERSIONS
from millpond.broker.apis import api_versions_response
from millpond.broker.context import BrokerContext
from millpond.console.metrics import BrokerMetrics
from millpond.protocol.codec import API_VERSIONS_KEY
from millpond.protocol.codec import CloseConnection
from millpond.protocol.codec import ProtocolError
from millpond.protocol.codec import RawResponse
from millpond.protocol.codec import UnsupportedRequest
from millpond.protocol.codec import decode_request
from millpond.protocol.codec import encode_response
from millpond.protocol.framing import FrameReader
from millpond.protocol.framing import FramingError

logger = logging.getLogger(__name__)

# Requests of one connection being handled or answered at once. Frames beyond it wait, still
# undecoded, and the socket is not read until the count drops, so a client pipelining
# requests cannot make the broker hold more than this many responses for it.
MAX_IN_FLIGHT_PER_CONNECTION = 64

Response = Entity | RawResponse | None


_connection_ids = itertools.count(1)
# The kernel caps it at net.core.somaxconn (4096 on current Linux).
LISTEN_BACKLOG = 4096


class KafkaConnection(asyncio.BufferedProtocol):
    def __init__(self, server: KafkaServer) -> None:
        self.server = server
        self.ctx = server.ctx
        self.metrics = server.metrics
        self.reader = FrameReader(server.ctx.config["socket.request.max.bytes"])
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.client_host = ""
        # (correlation id, response, API name, loop.time() on arrival), in arrival order.
        self._pending: collections.deque[tuple[int, asyncio.Future[Response], str, float]] = (
            collections.deque()
        )
        # Complete frames not yet started (see MAX_IN_FLIGHT_PER_CONNECTION).
        self._waiting: collections.deque[bytearray] = collections.deque()
        self._reading_paused = False
        self._writing_paused = False
        self._closed = False
        self.connection_id = next(_connection_ids)

    # --- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Responses are small and latency-bound: never let Nagle hold them back.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.client_host = f"/{peer[0]}" if peer else ""
        self.ip = peer[0] if peer else ""
        self._loop = asyncio.get_running_loop()
        self.last_active = self._loop.time()
        refusal = self.server.admit(self)
        self.server.connections.add(self)
        self.metrics.connection_opened()
        if refusal is not None:
            self.close(refusal)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.server.release(self)
        self.metrics.connection_closed()
        for _correlation_id, task, _api_name, _received in self._pending:
            task.cancel()
        self._pending.clear()
        self._waiting.clear()
        if self.ctx.shares is not None:
            self.ctx.shares.connection_closed(self.connection_id)

    @property
    def idle(self) -> bool:
        return not self._pending and not self._waiting and not self.reader.mid_frame

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.reader.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.metrics.bytes_received(nbytes)
        self.last_active = self._loop.time()
        try:
            self.reader.buffer_updated(nbytes)
        except FramingError as error:
            self.close(f"framing error: {error}")
            return
        self._waiting.extend(self.reader.frames())
        self._dispatch_waiting()

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._dispatch_waiting()

    def _dispatch_waiting(self) -> None:
        """Start waiting requests, in order, while the connection has room for them."""
        waiting = self._waiting
        while (
            waiting
            and not self._closed
            and not self._writing_paused
            and len(self._pending) < MAX_IN_FLIGHT_PER_CONNECTION
        ):
            self._dispatch(waiting.popleft())
        self._update_reading()

    # --- requests ------------------------------------------------------------------------------

    def _dispatch(self, frame: bytearray) -> None:
        try:
            header, request = decode_request(frame, SUPPORTED_VERSIONS)
        except UnsupportedRequest as unsupported:
            header = unsupported.header
            if header.api_key == API_VERSIONS_KEY:
                # KIP-511: answer in v0 so the client learns our versions and downgrades.
                body = api_versions_response(0, ErrorCode.unsupported_version)
                self._enqueue_ready(header.correlation_id, body, "ApiVersions")
                return
            self.close(
                f"unsupported api_key={header.api_key} version={header.api_version}"
                f" from client {header.client_id!r}"
            )
            return
        except ProtocolError as error:
            self.close(f"malformed request: {error}")
            return
        header = dataclasses.replace(
            header, client_host=self.client_host, connection_id=self.connection_id
        )
        api = APIS[header.api_key]
        coroutine = api.handler(self.ctx, header, request)
        loop = asyncio.get_running_loop()
        task = loop.create_task(coroutine)
        self._pending.append((header.correlation_id, task, api.name, loop.time()))
        task.add_done_callback(self._on_done)

    def _enqueue_ready(self, correlation_id: int, body: Response, api_name: str) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()
        future.set_result(body)
        self._pending.append((correlation_id, future, api_name, loop.time()))
        self._write_ready()

    def _on_done(self, _task: asyncio.Task[Any]) -> None:
        self._write_ready()

    def _write_ready(self) -> None:
        pending = self._pending
        while pending and pending[0][1].done():
            correlation_id, task, api_name, received = pending.popleft()
            if self._closed or task.cancelled():
                continue
            error = task.exception()
            if isinstance(error, CloseConnection):
                self.close(str(error))
                return
            if error is not None:
                logger.error("handler failed for %s: %r", self.peer, error, exc_info=error)
                self.close("internal error")
                return
            body = task.result()
            now = self._loop.time()
            self.last_active = now
            self.metrics.request_handled(api_name, now - received)
            if body is None or self.transport is None:
                continue
            if isinstance(body, RawResponse):
                self.transport.writelines(body.pieces)
                self.metrics.bytes_sent(sum(len(piece) for piece in body.pieces))
                continue
            try:
                encoded = encode_response(correlation_id, body)
            except Exception as error:  # a handler built a response its version cannot carry
                logger.error(
                    "cannot encode the %s response for %s: %r", api_name, self.peer, error,
                    exc_info=error,
                )  # fmt: skip
                self.close("internal error")
                return
            self.transport.write(encoded)
            self.metrics.bytes_sent(len(encoded))
        self._dispatch_waiting()

    def _update_reading(self) -> None:
        if self.transport is None or self._closed:
            return
        should_pause = (
            self._writing_paused
            or bool(self._waiting)
            or len(self._pending) >= MAX_IN_FLIGHT_PER_CONNECTION
        )
        if should_pause and not self._reading_paused:
            self.transport.pause_reading()
            self._reading_paused = True
        elif not should_pause and self._reading_paused:
            self.transport.resume_reading()
            self._reading_paused = False

    # --- closing -------------------------------------------------------------------------------

    def close(self, reason: str) -> None:
        if self._closed:
            return
        logger.warning("closing connection from %s: %s", self.peer, reason)
        self._closed = True
        if self.transport is not None:
            self.transport.abort()

    async def drain(self, timeout: float) -> None:
        """Wait for in-flight requests to finish and their responses to be written."""
        tasks = [task for _cid, task, _api_name, _received in self._pending]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        if self.transport is not None and not self._closed:
            self.transport.close()


class KafkaServer:
    def __init__(self, ctx: BrokerContext, host: str, port: int, metrics: BrokerMetrics) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.host = host
        self.port = port
        self.connections: set[KafkaConnection] = set()
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._server: asyncio.base_events.Server | None = None
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        # asyncio's default backlog of 100 overflows when hundreds of clients connect at once;
        # the kernel then drops a SYN and the client retries only after a second.
        self._server = await loop.create_server(
            lambda: KafkaConnection(self),
            self.host,
            self.port,
            reuse_address=True,
            backlog=LISTEN_BACKLOG,
        )
        self._reaper = loop.create_task(self._close_idle_connections())
        sockname = self._server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    def admit(self, connection: KafkaConnection) -> str | None:
        """Count a new connection; the reason to refuse it, if it is over a limit."""
        self._per_ip[connection.ip] += 1
        config = self.ctx.config
        if len(self.connections) >= config["max.connections"]:
            return f"max.connections={config['max.connections']} reached"
        if self._per_ip[connection.ip] > config["max.connections.per.ip"]:
            return f"max.connections.per.ip={config['max.connections.per.ip']} reached"
        return None

    def release(self, connection: KafkaConnection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self._per_ip[connection.ip] -= 1
            if not self._per_ip[connection.ip]:
                del self._per_ip[connection.ip]

    async def _close_idle_connections(self) -> None:
        """connections.max.idle.ms: close connections that sent nothing and await nothing."""
        idle_s = self.ctx.config["connections.max.idle.ms"] / 1000
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(max(idle_s / 4, 0.05), 10.0))
            cutoff = loop.time() - idle_s
            for connection in list(self.connections):
                if connection.idle and connection.last_active < cutoff:
                    connection.close(f"idle for more than {idle_s:g} s")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish (up to `timeout`), close connections."""
        if self._server is not None:
            self._server.close()
        if self._reaper is not None:
            self._reaper.cancel()
        connections = list(self.connections)
        if connections:
            await asyncio.gather(*(connection.drain(timeout) for connection in connections))
        if self._server is not None:
            await self._server.wait_closed()
