"""Debian's kcat (librdkafka 2.0.2) against the real broker: -L, produce, consume."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.server import BrokerProcess

pytestmark = pytest.mark.compat

KCAT = shutil.which("kcat") or shutil.which("kafkacat")


def kcat(*args: str, stdin: str | None = None) -> str:
    assert KCAT is not None, "kcat is not installed: .ci/run installs it (apt-get install kcat)"
    result = subprocess.run(
        [KCAT, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kcat_produce_consume_and_list(broker: BrokerProcess) -> None:
    lines = [f"key{n % 4}:value-{n}" for n in range(200)]
    kcat("-b", broker.bootstrap, "-P", "-t", "kc", "-K", ":", stdin="\n".join(lines) + "\n")
    metadata = kcat("-b", broker.bootstrap, "-L", "-t", "kc")
    assert 'topic "kc" with 1 partitions' in metadata
    out = kcat("-b", broker.bootstrap, "-C", "-t", "kc", "-e", "-o", "beginning", "-f", "%k:%s\\n")
    assert out.splitlines() == lines


def test_kcat_reads_from_offset_and_partition(broker: BrokerProcess) -> None:
    kcat(
        "-b",
        broker.bootstrap,
        "-P",
        "-t",
        "kc2",
        stdin="\n".join(f"m{n}" for n in range(10)) + "\n",
    )
    out = kcat(
        "-b", broker.bootstrap, "-C", "-t", "kc2", "-p", "0", "-o", "5", "-e", "-f", "%o %s\\n"
    )
    assert out.splitlines() == [f"{n} m{n}" for n in range(5, 10)]
