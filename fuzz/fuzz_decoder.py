"""Long-running coverage-guided fuzzing of the request path, by hand (not part of `make test`).

The same contract as tests/fuzz/test_decoder_fuzz.py, for hours instead of seconds: bytes from
libFuzzer go through FrameReader and then decode_request, and anything but FramingError,
ProtocolError or UnsupportedRequest is a crash that libFuzzer saves as `crash-<sha1>`.

Set up (atheris needs a CPython with a matching clang/libFuzzer; wheels exist for Linux x86-64):

    .venv/bin/pip install atheris

Run from the repository root:

    mkdir -p fuzz/corpus
    .venv/bin/python fuzz/fuzz_decoder.py fuzz/corpus -max_len=4096 -timeout=10 -rss_limit_mb=4096
    .venv/bin/python fuzz/fuzz_decoder.py -runs=100000 fuzz/corpus     # a bounded run
    .venv/bin/python fuzz/fuzz_decoder.py crash-<sha1>                 # replay one input

The first byte of each input picks how it is used: even = one whole request frame, odd = a byte
stream (size prefixes included) cut into chunks by the next bytes and fed to FrameReader, each
complete frame then decoded. The corpus directory is seeded with one valid request per supported
(api_key, version) on the first run, so libFuzzer starts from the protocol's structure.

Known crash (kio 0.6.5): a huge declared array length makes kio's native reader pre-allocate,
the allocation fails and Rust aborts ("memory allocation of N bytes failed"); see
tests.fuzz.mutations.HUGE_COMPACT_ARRAY. libFuzzer reports it as a deadly signal.
"""

from __future__ import annotations

import contextlib
import struct
import sys
from collections.abc import Callable
from pathlib import Path

try:
    import atheris
except ImportError:  # pragma: no cover - a by-hand tool
    atheris = None

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_FRAME_BYTES = 1 << 16

if atheris is not None:
    with atheris.instrument_imports():
        from millpond.protocol.codec import ProtocolError
        from millpond.protocol.codec import UnsupportedRequest
        from millpond.protocol.codec import decode_request
        from millpond.protocol.framing import FrameReader
        from millpond.protocol.framing import FramingError
    from millpond.broker.apis import SUPPORTED_VERSIONS


def decode(frame: bytes | bytearray) -> None:
    with contextlib.suppress(ProtocolError, UnsupportedRequest):
        decode_request(frame, SUPPORTED_VERSIONS)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] % 2 == 0:
        decode(data[1:])
        return
    provider = atheris.FuzzedDataProvider(data[1:])
    cuts = [provider.ConsumeIntInRange(1, 512) for _ in range(provider.ConsumeIntInRange(0, 8))]
    stream = provider.ConsumeBytes(provider.remaining_bytes())
    reader = FrameReader(MAX_FRAME_BYTES)
    position = 0
    try:
        for cut in [*cuts, len(stream)]:
            reader.receive_data(stream[position : position + cut])
            position += cut
            for frame in reader.frames():
                decode(frame)
    except FramingError:
        pass


def seed_corpus(directory: Path) -> None:
    """One valid request per supported (api_key, version), with kio's default field values
    where it has them and hypothesis's simplest values otherwise."""
    from hypothesis import HealthCheck
    from hypothesis import Phase
    from hypothesis import given
    from hypothesis import settings
    from hypothesis import strategies as st
    from kio.static.primitive import Records
    from tests.fuzz.mutations import ALL_VERSIONS
    from tests.fuzz.mutations import encode_request

    from millpond.protocol.codec import request_type

    st.register_type_strategy(Records, st.binary(max_size=64).map(Records))
    directory.mkdir(parents=True, exist_ok=True)

    def writer(api_key: int, version: int) -> Callable[[], None]:
        @settings(
            max_examples=1,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(data=st.data())
        def write(data: st.DataObject) -> None:
            body = data.draw(st.from_type(request_type(api_key, version)))
            frame = encode_request(api_key, version, body)
            (directory / f"seed-{api_key}-{version}").write_bytes(b"\x00" + frame)
            framed = struct.pack(">i", len(frame)) + frame
            (directory / f"seed-stream-{api_key}-{version}").write_bytes(b"\x01\x00" + framed * 2)

        return write

    for api_key, version in ALL_VERSIONS:
        writer(api_key, version)()


def main() -> None:
    if atheris is None:
        sys.exit(
            "atheris is not installed: .venv/bin/pip install atheris (see the top of this file)"
        )
    sys.path.insert(0, str(REPO_ROOT))
    corpus_dirs = [Path(arg) for arg in sys.argv[1:] if not arg.startswith("-")]
    for directory in corpus_dirs:
        if directory.is_dir() and not any(directory.iterdir()):
            seed_corpus(directory)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
