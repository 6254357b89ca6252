"""Flame graphs of Millpond's hot paths: py-spy samples the broker while confluent-kafka
drives one load, and writes bench/profiles/<load>.svg (and a speedscope JSON beside it).

    .venv/bin/python -m bench.profile [produce|consume|latency ...] [--rate 100]

Loads: `produce` (throughput: 1 KiB values, acks=all, linger 5 ms, 1 MB batches), `consume`
(reading that back by assignment), `latency` (5,000 msg/s, linger 1 ms, acks=all: the request
path at small batches, where per-request costs dominate).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import broker_bench

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
LOADS = ("produce", "consume", "latency")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install -e '.[bench]'")
    return found


def record(pid: int, name: str, rate: int, fmt: str) -> subprocess.Popen[bytes]:
    suffix = "svg" if fmt == "flamegraph" else "speedscope.json"
    return subprocess.Popen(
        [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            "--format",
            fmt,
            "--output",
            str(PROFILES_DIR / f"{name}.{suffix}"),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("loads", nargs="*", help=f"some of {', '.join(LOADS)} (default: all)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--messages", type=int, default=300_000)
    args = parser.parse_args()
    args.loads = args.loads or list(LOADS)
    unknown = set(args.loads) - set(LOADS)
    if unknown:
        parser.error(f"unknown loads {sorted(unknown)}; known: {', '.join(LOADS)}")
    PROFILES_DIR.mkdir(exist_ok=True)
    with broker_bench.running_broker("millpond") as broker:
        broker_bench.create_topic(broker.bootstrap, "profile")
        broker_bench.create_topic(broker.bootstrap, "profile-latency")
        if "consume" in args.loads and "produce" not in args.loads:
            broker_bench.produce_throughput(broker.bootstrap, "profile", args.messages)
        for load in args.loads:
            recorders = [
                record(broker.process.pid, load, args.rate, fmt)
                for fmt in ("flamegraph", "speedscope")
            ]
            time.sleep(0.5)  # let py-spy attach
            if load == "produce":
                result = broker_bench.produce_throughput(broker.bootstrap, "profile", args.messages)
            elif load == "consume":
                result = broker_bench.consume_throughput(broker.bootstrap, "profile", args.messages)
            else:
                result = broker_bench.latency(
                    broker.bootstrap, "profile-latency", 5000, 8.0, tail=True
                )
            for recorder in recorders:
                recorder.send_signal(subprocess.signal.SIGINT)
                recorder.wait(30)
            print(f"{load}: {broker_bench.brief(result)} -> {PROFILES_DIR / load}.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
