"""`python -m bench`: every scenario, each system started fresh per repeat, in alternating
order (A B A B ...), so drifts in the load of this shared machine hit every system alike.

    python -m bench [--scenarios throughput,scale,startup,queues,schemas] [--repeats 3] [--quick]
                    [--output FILE.json] [--compare OLD.json]

Prints per metric the median (min-max) of each system and the ratio Millpond / peer, and
writes every raw measurement to a JSON file for comparing commits (--compare shows the change
of each Millpond median against an earlier file). See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn
from rich.progress import Progress
from rich.progress import TextColumn
from rich.progress import TimeElapsedColumn
from rich.table import Table

from bench.scenarios import Scenario

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
SCENARIOS = ("throughput", "scale", "startup", "queues", "schemas")


def load(name: str) -> Scenario:
    module = importlib.import_module(f"bench.scenarios.{name}")
    scenario: Scenario = module.SCENARIO
    return scenario


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--systems", help="only these systems (comma-separated)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller loads, for a smoke run")
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/...)")
    parser.add_argument("--compare", type=Path, help="an earlier JSON result to compare with")
    args = parser.parse_args()
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    args.systems = None if args.systems is None else set(args.systems.split(","))
    return args


def median_of(runs: list[dict[str, Any]], system: str, key: str) -> tuple[float, list[float]]:
    values = [
        run["measured"][key]
        for run in runs
        if run["system"] == system and "error" not in run and key in run["measured"]
    ]
    return (statistics.median(values) if values else float("nan")), values


def num(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def summarize(
    scenario: Scenario, runs: list[dict[str, Any]], systems: list[str], console: Console
) -> dict[str, Any]:
    peers = [s for s in systems if s != "millpond"]
    table = Table(title=f"{scenario.name}: {scenario.about}", title_justify="left")
    table.add_column("metric (better)")
    for system in systems:
        table.add_column(system, justify="right")
    for peer in peers:
        if "millpond" in systems:
            table.add_column(f"millpond/{peer}", justify="right")
    summary: dict[str, Any] = {}
    for metric in scenario.metrics:
        medians = {}
        cells = [f"{metric.label} ({metric.better})"]
        for system in systems:
            median, values = median_of(runs, system, metric.key)
            medians[system] = median
            cells.append(
                f"{num(median)} ({num(min(values))}-{num(max(values))})" if values else "n/a"
            )
        ratios = {}
        for peer in peers:
            if "millpond" not in systems:
                continue
            ratio = medians["millpond"] / medians[peer] if medians[peer] else float("nan")
            ratios[peer] = ratio
            cells.append("n/a" if ratio != ratio else f"{ratio:.3g}")
        if all(cell == "n/a" for cell in cells[1 : 1 + len(systems)]):
            continue
        table.add_row(*cells)
        summary[metric.key] = {
            "label": metric.label,
            "better": metric.better,
            "median": medians,
            "ratio_millpond_to": ratios,
        }
    console.print(table)
    return summary


def compare(previous: Path, results: dict[str, Any], console: Console) -> None:
    old = json.loads(previous.read_text())
    table = Table(title=f"Millpond medians against {previous.name}", title_justify="left")
    for column in ("scenario", "metric", "before", "now", "change"):
        table.add_column(column)
    for name, scenario in results["scenarios"].items():
        for key, entry in scenario["summary"].items():
            before = old.get("scenarios", {}).get(name, {}).get("summary", {}).get(key)
            if before is None:
                continue
            a, b = before["median"].get("millpond"), entry["median"].get("millpond")
            if not a or b is None or a != a or b != b:
                continue
            table.add_row(name, entry["label"], num(a), num(b), f"{(b - a) / a * 100:+.1f}%")
    console.print(table)


def git_head() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=BENCH_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    args = parse_args()
    console = Console(stderr=True)
    started = time.strftime("%Y%m%d-%H%M%S")
    scenarios = [load(name) for name in args.scenarios]
    plan = []
    for scenario in scenarios:
        chosen = [s for s in scenario.systems if args.systems is None or s in args.systems]
        for repeat in range(args.repeats):
            for system in chosen if repeat % 2 == 0 else chosen[::-1]:
                plan.append((scenario, repeat, system))
    runs: dict[str, list[dict[str, Any]]] = {scenario.name: [] for scenario in scenarios}
    with Progress(
        TextColumn("[bold]{task.fields[what]}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[step]}"),
        console=console,
    ) as progress:
        task = progress.add_task("bench", total=len(plan), what="", step="")
        for scenario, repeat, system in plan:
            what = f"{scenario.name} #{repeat + 1} {system}"
            progress.update(task, what=what, step="starting")

            def say(text: str, task: Any = task) -> None:
                progress.update(task, step=text)

            run: dict[str, Any] = {
                "system": system,
                "repeat": repeat,
                "loadavg_before": os.getloadavg(),
            }
            began = time.monotonic()
            try:
                run["measured"] = scenario.run_once(system, repeat, args, say)
            except Exception as error:
                run["error"] = f"{type(error).__name__}: {error}"
                run["measured"] = {}
                progress.console.print(f"[red]{what} failed: {run['error']}")
                progress.console.print(traceback.format_exc(), markup=False, highlight=False)
            run["seconds"] = time.monotonic() - began
            run["loadavg_after"] = os.getloadavg()
            runs[scenario.name].append(run)
            progress.advance(task)
    out = Console()
    results: dict[str, Any] = {
        "started": started,
        "commit": git_head(),
        "host": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "options": {"repeats": args.repeats, "quick": args.quick},
        "scenarios": {},
    }
    for scenario in scenarios:
        systems = [s for s in scenario.systems if args.systems is None or s in args.systems]
        summary = summarize(scenario, runs[scenario.name], systems, out)
        results["scenarios"][scenario.name] = {
            "about": scenario.about,
            "systems": systems,
            "summary": summary,
            "runs": runs[scenario.name],
        }
    output = args.output or RESULTS_DIR / f"suite-{started}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    out.print(f"raw results: {output}")
    if args.compare is not None:
        compare(args.compare, results, out)
    failed = sum(1 for name in runs for run in runs[name] if "error" in run)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
