"""The benchmark scenarios `python -m bench` runs (see bench/README.md).

Each scenario module defines one `SCENARIO`: the systems it compares (Millpond first, then its
peers), the metrics it reports, and `run_once(system, repeat, options, say)`, which starts the
system fresh, measures, stops it, and returns {metric key: value}. It raises on failure; the
suite records the error and goes on. `say(text)` updates the progress line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Say = Callable[[str], None]
Measured = dict[str, float]


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    label: str
    better: Literal["higher", "lower"]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    about: str
    systems: tuple[str, ...]
    metrics: tuple[Metric, ...]
    run_once: Callable[[str, int, argparse.Namespace, Say], Measured]
