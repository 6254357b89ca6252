"""A small HTTP/1.1 listener: `GET /health`, `GET /metrics` and the schema registry's REST API.

One request per connection (every response says `Connection: close`), so there is no
keep-alive or pipelining to frame; a request body is read by its Content-Length (chunked
bodies are refused with 411, which HTTP clients answer by sending a length). The request head
is parsed by the pure `parse_request_head`; the asyncio shell around it only bounds what a
client may cost:

- the head (request line and headers, up to the blank line) may be at most MAX_HEAD_BYTES;
  a longer one is answered 431 and the connection closed;
- a body may be at most MAX_BODY_BYTES (413);
- the head and body must arrive, and the response be taken, within `timeout` seconds (408 or
  abort);
- anything unparseable is answered 400, never raised; a failing health or metrics source is
  answered 500 and logged.

Routes: `/health` answers the JSON from `health()`, 200 when its "status" is "ready" and 503
otherwise (so a load balancer or orchestrator probe needs nothing but the status code);
`/metrics` answers the Prometheus text format; `/subjects`, `/schemas`, `/compatibility`,
`/config` and `/mode` go to the schema registry (registry/routes.py) when one is given.
Another path is 404; another method on a known path 405.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

from millpond.console.metrics import BrokerMetrics
from millpond.registry.routes import CONTENT_TYPE as REGISTRY_CONTENT_TYPE
from millpond.registry.routes import ApiRequest
from millpond.registry.routes import RegistryRoutes

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 8 * 1024
# Schemas are kilobytes; parsing a large .proto takes seconds per megabyte.
MAX_BODY_BYTES = 2 * 1024 * 1024
DEFAULT_TIMEOUT = 10.0

_HEAD_END = b"\r\n\r\n"
# RFC 9110 §5.6.2 token: what methods and header names are made of.
_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rf"({_TCHARS}) ([\x21-\x7e]+) HTTP/(\d)\.(\d)")
_HEADER = re.compile(rf"({_TCHARS}):[ \t]*(.*?)[ \t]*")
_DIGITS = re.compile(r"[0-9]{1,12}")
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"


class BadRequest(ValueError):
    """The request head is not HTTP/1.x; `status` is what to answer (400 or 505)."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str
    path: str
    version: tuple[int, int]
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in arrival order


@dataclass(frozen=True, slots=True)
class Response:
    status: HTTPStatus
    body: bytes
    content_type: str = _TEXT
    allow: str | None = None


def parse_request_head(head: bytes) -> RequestHead:
    """Parse a request line and headers (CRLF line ends, the final blank line optional).

    Returns the parsed head; raises BadRequest (status 400, or 505 for a version other than
    HTTP/1.x). Leading blank lines are skipped, as RFC 9112 §2.2 allows.
    """
    lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise BadRequest("empty request")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise BadRequest(f"malformed request line {lines[0][:80]!r}")
    method, target, major, minor = match.groups()
    if major != "1":
        raise BadRequest(f"HTTP/{major}.{minor}", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        header = _HEADER.fullmatch(line)
        if header is None or "\r" in header[2] or "\0" in header[2]:
            # Also rejects obsolete line folding (a line starting with whitespace).
            raise BadRequest(f"malformed header line {line[:80]!r}")
        headers.append((header[1].lower(), header[2]))
    version = (1, int(minor))
    if version >= (1, 1) and not any(name == "host" for name, _value in headers):
        raise BadRequest("HTTP/1.1 request without Host")  # RFC 9112 §3.2
    try:
        path = urlsplit(target).path
    except ValueError as error:
        raise BadRequest(f"malformed target {target[:80]!r}") from error
    return RequestHead(method, target, path, version, tuple(headers))


def encode_response(response: Response) -> bytes:
    """The status line, headers and body of `response`, ready to write."""
    lines = [
        f"HTTP/1.1 {response.status.value} {response.status.phrase}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Cache-Control: no-store",
        "Connection: close",
    ]
    if response.allow is not None:
        lines.append(f"Allow: {response.allow}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


def _plain(status: HTTPStatus, message: str | None = None) -> Response:
    return Response(status, f"{message or status.phrase}\n".encode())


class HttpServer:
    """Serves /health and /metrics on `host:port` until stopped."""

    ROUTES = ("/health", "/metrics")

    def __init__(
        self,
        host: str,
        port: int,
        metrics: BrokerMetrics,
        health: Callable[[], dict[str, object]],
        *,
        registry: RegistryRoutes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.metrics = metrics
        self.health = health
        self.registry = registry
        self.timeout = timeout
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._stopping = False

    async def start(self) -> tuple[str, int]:
        """Start listening; returns the bound address (a free port when `port` is 0)."""
        self._stopping = False
        self._server = await asyncio.start_server(
            self._serve_connection,
            self.host,
            self.port,
            limit=MAX_HEAD_BYTES,
            reuse_address=True,
        )
        sockname = self._server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    async def stop(self) -> None:
        """Stop listening and drop every open connection, answered or not."""
        self._stopping = True
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Aborting ends each handler's pending read or drain with EOF or ConnectionResetError,
        # which it handles; cancelling instead would make asyncio log the cancelled task.
        tasks = list(self._connections)
        for writer in self._connections.values():
            writer.transport.abort()
        if tasks:
            await asyncio.wait(tasks)
        await server.wait_closed()

    # --- one connection ------------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if self._stopping or task is None:
            writer.transport.abort()
            return
        self._connections[task] = writer
        try:
            response = await self._read_request(reader)
            if response is not None:
                writer.write(encode_response(response))
                async with asyncio.timeout(self.timeout):
                    await writer.drain()
            writer.close()
        except (OSError, TimeoutError):
            writer.transport.abort()
        finally:
            del self._connections[task]

    async def _read_request(self, reader: asyncio.StreamReader) -> Response | None:
        """The response to the connection's request; None to close without answering."""
        try:
            async with asyncio.timeout(self.timeout):
                head = await reader.readuntil(_HEAD_END)
        except asyncio.LimitOverrunError:
            return _plain(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        except asyncio.IncompleteReadError as error:
            # The client stopped sending before the blank line ending the head.
            return _plain(HTTPStatus.BAD_REQUEST) if error.partial.strip() else None
        except TimeoutError:
            return _plain(HTTPStatus.REQUEST_TIMEOUT)
        try:
            request = parse_request_head(head)
        except BadRequest as error:
            logger.debug("bad HTTP request: %s", error)
            return _plain(error.status, str(error))
        if self.registry is not None and self.registry.handles(request.path):
            return await self._registry_request(request, reader)
        return self._route(request)

    async def _registry_request(
        self, request: RequestHead, reader: asyncio.StreamReader
    ) -> Response | None:
        assert self.registry is not None
        headers = dict(request.headers)
        if "transfer-encoding" in headers:
            return _plain(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
        raw_length = headers.get("content-length", "0")
        if not _DIGITS.fullmatch(raw_length):
            return _plain(HTTPStatus.BAD_REQUEST, f"bad Content-Length {raw_length[:40]!r}")
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            return _plain(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"bodies are at most {MAX_BODY_BYTES} bytes"
            )
        try:
            async with asyncio.timeout(self.timeout):
                body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            return None
        except TimeoutError:
            return _plain(HTTPStatus.REQUEST_TIMEOUT)
        query = dict(parse_qsl(urlsplit(request.target).query))
        api_request = ApiRequest(request.method, request.path, query, body)
        try:
            answer = await self.registry.handle(api_request)
        except Exception:  # a bug must cost one request, not the listener
            logger.exception("schema registry %s %s failed", request.method, request.path)
            error = {"error_code": 50001, "message": "internal error; see the broker's log"}
            return Response(
                HTTPStatus.INTERNAL_SERVER_ERROR, json.dumps(error).encode(), REGISTRY_CONTENT_TYPE
            )
        # A str is a bare schema, sent as Confluent sends it; anything else is JSON.
        text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
        return Response(
            HTTPStatus(answer.status), text.encode(), REGISTRY_CONTENT_TYPE, allow=answer.allow
        )

    def _route(self, request: RequestHead) -> Response:
        if request.path not in self.ROUTES:
            return _plain(HTTPStatus.NOT_FOUND)
        if request.method != "GET":
            return Response(
                HTTPStatus.METHOD_NOT_ALLOWED, b"Method Not Allowed\n", _TEXT, allow="GET"
            )
        try:
            if request.path == "/health":
                return self._health()
            return Response(HTTPStatus.OK, self.metrics.render(), CONTENT_TYPE_LATEST)
        except Exception:  # a broken source must cost one scrape, not the listener
            logger.exception("answering GET %s failed", request.path)
            return _plain(HTTPStatus.INTERNAL_SERVER_ERROR)

    def _health(self) -> Response:
        body = self.health()
        status = HTTPStatus.OK if body.get("status") == "ready" else HTTPStatus.SERVICE_UNAVAILABLE
        return Response(status, json.dumps(body, default=str).encode(), _JSON)
