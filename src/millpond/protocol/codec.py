"""Request decoding and response encoding on top of kio's generated message types.

A request frame (after the size prefix) is:

    0    2    request_api_key        int16
    2    2    request_api_version    int16
    4    4    correlation_id         int32
    8    2+n  client_id              nullable int16-length string (never compact)
    ...       tagged fields          only in header v2 (flexible request versions)
    ...       request body           as kio's schema for (api_key, version)

A response is `correlation_id int32`, then tagged fields for flexible versions (header v1), then
the body. ApiVersions is the exception: its response header is always v0, so a client that does
not know our versions can still read it.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from functools import cache
from typing import Any

from kio.index import load_request_schema
from kio.index import load_response_schema
from kio.serial import entity_reader
from kio.serial import entity_writer
from kio.serial.errors import BufferUnderflow
from kio.static.protocol import Entity

from millpond.protocol.guard import GuardError
from millpond.protocol.guard import check_request
from millpond.protocol.produce_request import ProduceDecodeError
from millpond.protocol.produce_request import ProduceRequestData
from millpond.protocol.produce_request import decode_produce_request
from millpond.protocol.varint import read_uvarint

API_VERSIONS_KEY = 18
PRODUCE_KEY = 0

_HEADER_FIXED = struct.Struct(">hhih")
_INT32 = struct.Struct(">i")


@dataclass(frozen=True, slots=True)
class RawResponse:
    """A response already encoded as pieces (size prefix first) for `transport.writelines`:
    how hot paths hand record bytes to the transport without copying them."""

    pieces: list[bytes | memoryview]


class CloseConnection(Exception):
    """A handler's way to end the connection with no response: Kafka's answer to a failed
    acks=0 produce, so the producer notices and refreshes its metadata."""


class ProtocolError(Exception):
    """The request cannot be decoded; the connection must be closed."""


@dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    # Filled in by the transport shell: where the request came from, as Kafka shows it.
    client_host: str = ""
    # Which connection it came on (share sessions close with their connection).
    connection_id: int = 0


class UnsupportedRequest(Exception):
    """A well-framed request whose API key or version the broker does not serve."""

    def __init__(self, header: RequestHeader) -> None:
        super().__init__(f"unsupported api_key={header.api_key} version={header.api_version}")
        self.header = header


def read_request_header(frame: bytes | bytearray | memoryview) -> tuple[RequestHeader, int]:
    """Decode the fixed part of the header; returns it and the offset after client_id."""
    if len(frame) < _HEADER_FIXED.size:
        raise ProtocolError("request shorter than its header")
    api_key, api_version, correlation_id, client_id_length = _HEADER_FIXED.unpack_from(frame, 0)
    offset = _HEADER_FIXED.size
    client_id: str | None = None
    if client_id_length >= 0:
        end = offset + client_id_length
        if end > len(frame):
            raise ProtocolError("client_id runs past the end of the request")
        try:
            client_id = bytes(frame[offset:end]).decode()
        except UnicodeDecodeError as error:
            raise ProtocolError("client_id is not UTF-8") from error
        offset = end
    elif client_id_length != -1:
        raise ProtocolError(f"bad client_id length {client_id_length}")
    return RequestHeader(api_key, api_version, correlation_id, client_id), offset


@cache
def request_type(api_key: int, api_version: int) -> type[Entity]:
    return load_request_schema(api_key, api_version)


@cache
def response_type(api_key: int, api_version: int) -> type[Entity]:
    return load_response_schema(api_key, api_version)


@cache
def _reader(entity: type[Entity]) -> Any:
    return entity_reader(entity)


@cache
def _writer(entity: type[Entity]) -> Any:
    return entity_writer(entity)


def _skip_tagged_fields(frame: bytes | bytearray | memoryview, offset: int) -> int:
    try:
        count, offset = read_uvarint(frame, offset)
        for _ in range(count):
            _tag, offset = read_uvarint(frame, offset)
            size, offset = read_uvarint(frame, offset)
            offset += size
    except (IndexError, ValueError) as error:
        raise ProtocolError(f"malformed tagged fields: {error}") from error
    if offset > len(frame):
        raise ProtocolError("tagged field runs past the end of the request")
    return offset


def decode_request(
    frame: bytes | bytearray | memoryview, supported: dict[int, tuple[int, int]]
) -> tuple[RequestHeader, Entity | ProduceRequestData]:
    """Decode a whole request frame.

    Raises UnsupportedRequest for an API or version outside `supported` (api_key -> min, max),
    and ProtocolError for anything malformed.
    """
    writable = frame
    if not isinstance(frame, bytes):
        # kio's native readers accept only read-only buffers; a read-only view costs no copy.
        frame = memoryview(frame).toreadonly()
    header, offset = read_request_header(frame)
    versions = supported.get(header.api_key)
    if versions is None or not versions[0] <= header.api_version <= versions[1]:
        raise UnsupportedRequest(header)
    body_type = request_type(header.api_key, header.api_version)
    if body_type.__flexible__:
        offset = _skip_tagged_fields(frame, offset)
    if header.api_key == PRODUCE_KEY and not isinstance(writable, bytes):
        # The hot path: parsed by hand, its record batches left in place in the frame.
        try:
            return header, decode_produce_request(writable, offset, header.api_version)
        except ProduceDecodeError as error:
            raise ProtocolError(f"malformed ProduceRequest: {error}") from error
    try:
        check_request(body_type, frame, offset)
    except GuardError as error:
        raise ProtocolError(f"malformed {body_type.__name__}: {error}") from error
    try:
        body, _size = _reader(body_type)(frame, offset)
    except (BufferUnderflow, ValueError, TypeError, OverflowError, UnicodeDecodeError) as error:
        raise ProtocolError(f"malformed {body_type.__name__}: {error}") from error
    except Exception as error:
        raise ProtocolError(f"malformed {body_type.__name__}: {error!r}") from error
    # Trailing bytes are ignored, as Kafka's own parser does: librdkafka 2.16's all-topics
    # Metadata v12 request carries three (an int32 array count where a varint belongs).
    return header, body


def encode_response(correlation_id: int, body: Entity) -> bytes:
    """Size prefix + response header + body."""
    buffer = io.BytesIO()
    buffer.write(b"\0\0\0\0")
    buffer.write(_INT32.pack(correlation_id))
    if body.__flexible__ and getattr(body, "__api_key__", None) != API_VERSIONS_KEY:
        buffer.write(b"\0")  # no tagged fields in the response header
    _writer(type(body))(buffer, body)
    payload = buffer.getbuffer()
    _INT32.pack_into(payload, 0, len(payload) - 4)
    del payload
    return buffer.getvalue()
