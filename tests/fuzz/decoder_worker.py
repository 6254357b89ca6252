"""A child process that decodes request frames, so a decoder that aborts (native code calling
abort(), say on a failed allocation) fails one fuzz example instead of killing pytest.

Protocol on stdin/stdout, one frame at a time, in order:

    in   size int32 big-endian, then the frame (a size of -1 asks the worker to exit)
    out  one line per frame:  "decoded" | "unsupported" | "rejected"
                              | "unexpected <exception repr>" | "slow <seconds>"

The parent tells which frame killed the worker by how many lines it had read before EOF.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from millpond.protocol.codec import ProtocolError
from millpond.protocol.codec import UnsupportedRequest
from millpond.protocol.codec import decode_request

_SIZE = struct.Struct(">i")
REPO_ROOT = Path(__file__).resolve().parents[2]

# A decode of a frame of at most a few KiB that takes longer than this is a denial of service
# (a huge element count over zero-width elements, say), not slowness of the test machine.
SLOW_DECODE_SECONDS = 2.0

# How kio's native reader dies when a hostile array count makes it pre-allocate: Rust's
# allocation-failure handler prints this and aborts the process (see test_known_decoder_abort).
KNOWN_ABORT = "memory allocation of"


def classify(frame: bytes, supported: dict[int, tuple[int, int]]) -> str:
    started = time.perf_counter()
    try:
        decode_request(frame, supported)
    except UnsupportedRequest:
        outcome = "unsupported"
    except ProtocolError:
        outcome = "rejected"
    except Exception as error:
        outcome = f"unexpected {error!r}".replace("\n", " ")
    else:
        outcome = "decoded"
    elapsed = time.perf_counter() - started
    if elapsed > SLOW_DECODE_SECONDS:
        return f"slow {elapsed:.2f}"
    return outcome


def serve(supported: dict[int, tuple[int, int]]) -> None:
    stdin = sys.stdin.buffer
    stdout = sys.stdout
    while True:
        prefix = stdin.read(4)
        if len(prefix) < 4:
            return
        (size,) = _SIZE.unpack(prefix)
        if size < 0:
            return
        frame = stdin.read(size)
        stdout.write(classify(frame, supported) + "\n")
        stdout.flush()


@dataclass(frozen=True, slots=True)
class Crash:
    frame: bytes
    returncode: int
    stderr: str

    @property
    def known(self) -> bool:
        return KNOWN_ABORT in self.stderr

    def describe(self) -> str:
        tail = "\n".join(self.stderr.strip().splitlines()[:3])
        return f"decoder died ({self.returncode}) on frame {self.frame.hex()}:\n{tail}"


class IsolatedDecoder:
    """decode_request in a child process that is restarted whenever it dies."""

    def __init__(self, supported: dict[int, tuple[int, int]]) -> None:
        self.supported = supported
        self.crashes: list[Crash] = []
        self._process: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src")]))
        # Keep a dying worker's message short: no Rust backtrace.
        env["RUST_BACKTRACE"] = "0"
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fuzz.decoder_worker",
                json.dumps({str(k): v for k, v in self.supported.items()}),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO_ROOT,
            env=env,
        )

    def decode_many(self, frames: list[bytes]) -> list[str | Crash]:
        """The outcome of each frame; a Crash where the worker died on it."""
        outcomes: list[str | Crash] = []
        position = 0
        # Batches stay far below the pipe's capacity on the way back, so writing a batch
        # before reading its answers cannot deadlock.
        while position < len(frames):
            batch = frames[position : position + 256]
            outcomes.extend(self._decode_batch(batch))
            position = len(outcomes)
        return outcomes

    def decode(self, frame: bytes) -> str | Crash:
        return self.decode_many([frame])[0]

    def _decode_batch(self, batch: list[bytes]) -> list[str | Crash]:
        if self._process is None or self._process.poll() is not None:
            self._process = self._start()
        process = self._process
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(b"".join(_SIZE.pack(len(f)) + f for f in batch))
            process.stdin.flush()
        except BrokenPipeError:
            pass
        outcomes: list[str | Crash] = []
        for frame in batch:
            line = process.stdout.readline()
            if not line:
                outcomes.append(self._reap(frame))
                break
            outcomes.append(line.decode().rstrip("\n"))
        return outcomes

    def _reap(self, frame: bytes) -> Crash:
        process = self._process
        assert process is not None
        _out, err = process.communicate(timeout=30)
        self._process = None
        crash = Crash(frame, process.returncode, err.decode(errors="replace"))
        self.crashes.append(crash)
        return crash

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            assert process.stdin is not None
            process.stdin.write(_SIZE.pack(-1))
            process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


if __name__ == "__main__":
    serve({int(k): (v[0], v[1]) for k, v in json.loads(sys.argv[1]).items()})
