"""A blocking Kafka client for the few requests confluent-kafka's AdminClient cannot make.

confluent-kafka 2.16 has no admin calls for share groups (KIP-932), so `millpond groups` sends
those requests itself: one socket to one broker, one request at a time, kio's generated types
for the bodies. Every frame is `size int32` then the payload; a request payload is

    request header   api_key int16, api_version int16, correlation_id int32,
                     client_id int16-length string, tagged fields (v2: flexible versions only)
    request body     kio's schema for (api_key, version)

and a response payload is `correlation_id int32`, tagged fields (v1: flexible versions, except
ApiVersions, whose header is always v0), then the body.

Before its first request the client asks the broker for its ApiVersions, so a request the
broker does not serve fails as `ApiNotServed` with the API's name instead of a dropped
connection.
"""

from __future__ import annotations

import io
import socket
import struct
from types import TracebackType
from typing import TypeVar

from kio.schema.api_versions.v0.request import ApiVersionsRequest
from kio.schema.api_versions.v0.response import ApiVersionsResponse
from kio.schema.errors import ErrorCode
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.find_coordinator.v4.response import FindCoordinatorResponse
from kio.serial import entity_reader
from kio.serial import entity_writer
from kio.serial.errors import BufferUnderflow
from kio.static.constants import EntityType
from kio.static.primitive import i8
from kio.static.primitive import i16
from kio.static.primitive import i32
from kio.static.protocol import RequestPayload
from kio.static.protocol import ResponsePayload

from millpond.cli.client import CLIENT_ID
from millpond.cli.errors import CliError

R = TypeVar("R", bound=ResponsePayload)

_SIZE = struct.Struct(">i")
_CORRELATION_ID = struct.Struct(">i")
# No answer the CLI asks for comes near this; a larger size means a confused peer.
_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_GROUP_KEY_TYPE = i8(0)


class ApiNotServed(CliError):
    """The broker does not offer the API (or none of the versions this client speaks)."""


def split_host_port(address: str) -> tuple[str, int]:
    """("host", port) from HOST:PORT or [IPv6]:PORT; ValueError when malformed."""
    host, _, port = address.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {address.strip()!r}")
    return host, int(port)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class KafkaWire:
    """One connection to one broker. Raises CliError for anything that goes wrong on it."""

    def __init__(self, address: str, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        host, port = split_host_port(address)
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as error:
            raise CliError(f"cannot reach a broker at {address}: {_reason(error)}") from None
        self._correlation_id = 0
        self._versions: dict[int, tuple[int, int]] | None = None

    @classmethod
    def to_bootstrap(cls, bootstrap: str, timeout: float) -> KafkaWire:
        """A connection to the first broker of a HOST:PORT[,HOST:PORT…] list that answers."""
        problem: CliError | None = None
        for address in bootstrap.split(","):
            try:
                return cls(address.strip(), timeout)
            except CliError as error:
                problem = error
        assert problem is not None
        raise problem

    def __enter__(self) -> KafkaWire:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def check_served(self, request: type[RequestPayload], purpose: str | None = None) -> None:
        """ApiNotServed unless the broker serves `request`'s API at its version.

        `purpose` (say "share groups") names what the API is needed for in the message.
        """
        if self._versions is None:
            answer = self._exchange(ApiVersionsRequest(), ApiVersionsResponse)
            if answer.error_code != ErrorCode.none:
                raise CliError(f"{self.address} refused ApiVersions: {answer.error_code.name}")
            self._versions = {
                int(api.api_key): (int(api.min_version), int(api.max_version))
                for api in answer.api_keys
            }
        offered = self._versions.get(request.__api_key__)
        if offered is None or not offered[0] <= request.__version__ <= offered[1]:
            api = f"{request.__name__.removesuffix('Request')} v{request.__version__}"
            if purpose is None:
                raise ApiNotServed(f"the broker at {self.address} does not serve {api}")
            raise ApiNotServed(f"the cluster does not serve {purpose} ({api})")

    def call(self, request: RequestPayload, response: type[R], purpose: str | None = None) -> R:
        """Send `request` and decode the answer as `response` (the same API and version).

        Raises ApiNotServed when the broker does not offer it, CliError on any other failure.
        """
        if (response.__api_key__, response.__version__) != (
            request.__api_key__,
            request.__version__,
        ) or response.__type__ is not EntityType.response:
            raise TypeError(f"{response.__name__} does not answer {type(request).__name__}")
        self.check_served(type(request), purpose)
        return self._exchange(request, response)

    def find_coordinator(self, group: str) -> tuple[int, str]:
        """(node id, HOST:PORT) of the broker that coordinates `group`."""
        answer = self.call(
            FindCoordinatorRequest(key_type=_GROUP_KEY_TYPE, coordinator_keys=(group,)),
            FindCoordinatorResponse,
        )
        found = answer.coordinators[0] if answer.coordinators else None
        if found is None or found.error_code != ErrorCode.none:
            reason = found.error_code.name if found is not None else "no answer"
            raise CliError(f"finding the coordinator of group {group!r}: {reason}")
        return int(found.node_id), join_host_port(found.host, int(found.port))

    def _exchange(self, request: RequestPayload, response: type[R]) -> R:
        self._correlation_id += 1
        header = request.__header_schema__(
            request_api_key=i16(request.__api_key__),
            request_api_version=i16(request.__version__),
            correlation_id=i32(self._correlation_id),
            client_id=CLIENT_ID,
        )
        buffer = io.BytesIO()
        buffer.write(b"\0\0\0\0")
        entity_writer(type(header))(buffer, header)
        entity_writer(type(request))(buffer, request)
        payload = buffer.getbuffer()
        _SIZE.pack_into(payload, 0, len(payload) - _SIZE.size)
        del payload
        try:
            self._sock.sendall(buffer.getvalue())
            (size,) = _SIZE.unpack(self._read_exactly(_SIZE.size))
            if not _CORRELATION_ID.size <= size <= _MAX_RESPONSE_BYTES:
                raise CliError(f"{self.address} sent a response of {size} bytes")
            frame = self._read_exactly(size)
        except OSError as error:
            raise CliError(f"talking to {self.address}: {_reason(error)}") from None
        try:
            got, offset = entity_reader(response.__header_schema__)(frame, 0)
            if got.correlation_id != self._correlation_id:
                raise CliError(f"{self.address} answered another request")
            body, _ = entity_reader(response)(frame, offset)
        except (BufferUnderflow, ValueError, TypeError, IndexError) as error:
            problem = f"{self.address} sent a malformed {response.__name__}: {error}"
            raise CliError(problem) from None
        return body

    def _read_exactly(self, count: int) -> bytes:
        chunks = []
        while count:
            chunk = self._sock.recv(min(count, 1 << 20))
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)


def _reason(error: OSError) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return error.strerror or str(error)
