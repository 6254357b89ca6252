"""A minimal blocking Kafka wire client for tests: send a kio request, read the kio response."""

from __future__ import annotations

import io
import socket
import struct
from typing import Any

from kio.index import load_response_schema
from kio.serial import entity_reader
from kio.serial import entity_writer


class WireClient:
    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def send(self, request: Any, client_id: str = "wire-test") -> int:
        self.correlation_id += 1
        buffer = io.BytesIO()
        encoded_id = client_id.encode()
        buffer.write(
            struct.pack(
                ">hhih",
                request.__api_key__,
                request.__version__,
                self.correlation_id,
                len(encoded_id),
            )
        )
        buffer.write(encoded_id)
        if request.__flexible__:
            buffer.write(b"\0")
        entity_writer(type(request))(buffer, request)
        self.send_raw(buffer.getvalue())
        return self.correlation_id

    def read_frame(self) -> bytes:
        size = struct.unpack(">i", self._read_exactly(4))[0]
        return self._read_exactly(size)

    def _read_exactly(self, count: int) -> bytes:
        chunks = []
        while count:
            chunk = self.sock.recv(count)
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def receive(self, api_key: int, version: int, correlation_id: int) -> Any:
        frame = self.read_frame()
        (got_id,) = struct.unpack_from(">i", frame, 0)
        assert got_id == correlation_id
        schema = load_response_schema(api_key, version)
        offset = 4
        if schema.__flexible__ and api_key != 18:
            offset += 1
        response, _ = entity_reader(schema)(frame, offset)
        return response

    def call(self, request: Any) -> Any:
        correlation_id = self.send(request)
        return self.receive(request.__api_key__, request.__version__, correlation_id)

    def is_closed_by_peer(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
