"""Throughput, latency and memory: broker_bench.py's four phases (produce and consume
throughput, acks=all latency, end-to-end latency) with CPU and RSS, as one scenario."""

from __future__ import annotations

import argparse

from bench import broker_bench
from bench.scenarios import Measured
from bench.scenarios import Metric
from bench.scenarios import Say
from bench.scenarios import Scenario


def run_once(system: str, repeat: int, options: argparse.Namespace, say: Say) -> Measured:
    args = argparse.Namespace(
        messages=20_000 if options.quick else 200_000,
        rate=5000,
        latency_seconds=2.0 if options.quick else 5.0,
    )
    say("produce, consume, ack latency, end-to-end latency")
    result = broker_bench.run_once(system, repeat, args)
    if "error" in result:
        raise RuntimeError(result["error"])
    measured: Measured = {}
    for phase, key, _label, _better in broker_bench.METRICS:
        source = result[phase] if phase else result
        if key in source:
            measured[f"{phase}.{key}" if phase else key] = float(source[key])
    return measured


SCENARIO = Scenario(
    name="throughput",
    about="confluent-kafka, 1 KiB values, acks=all, 6 partitions: throughput, latency, memory",
    systems=("millpond", "tansu"),
    metrics=tuple(
        Metric(f"{phase}.{key}" if phase else key, label, better)  # type: ignore[arg-type]
        for phase, key, label, better in broker_bench.METRICS
    ),
    run_once=run_once,
)
