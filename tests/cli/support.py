"""Run the real `millpond` command in a subprocess, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(
    *args: str, bootstrap: str | None = None, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m millpond ARGS [--bootstrap-server B]`, with stdout and stderr captured."""
    command = [sys.executable, "-m", "millpond", *args]
    if bootstrap is not None:
        command += ["--bootstrap-server", bootstrap]
    env = {k: v for k, v in os.environ.items() if k != "MILLPOND_BOOTSTRAP_SERVER"}
    env["COLUMNS"] = "200"  # wide enough that rich never wraps a cell
    completed = subprocess.run(
        command, input=stdin, capture_output=True, timeout=timeout, env=env, check=False
    )
    return subprocess.CompletedProcess(
        completed.args,
        completed.returncode,
        completed.stdout.decode(errors="replace"),
        completed.stderr.decode(errors="replace"),
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """The command failed with `code` and said so in exactly one `millpond: error:` line."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("millpond: error: "), result.stderr
    for word in words:
        assert word in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def table_rows(output: str) -> list[list[str]]:
    """The body rows of the rich tables in `output`, as lists of stripped cells."""
    rows = []
    for line in output.splitlines():
        if line.startswith("│"):
            rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows
