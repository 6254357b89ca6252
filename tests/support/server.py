"""Start the real broker as a subprocess on loopback, for integration and compat tests."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

READY = re.compile(
    r"millpond ready on (?P<host>[^ ]+):(?P<port>\d+)[^,]*(?:, http on [^ ,]+:(?P<http>\d+))?"
)


class BrokerProcess:
    """A `python -m millpond serve` process with its own data dir and log file."""

    def __init__(
        self, data_dir: Path, *settings: str, port: int = 0, fd_limit: int | None = None
    ) -> None:
        self.data_dir = data_dir
        self.fd_limit = fd_limit
        self.settings = settings
        self.port = port
        self.http_port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """The HTTP listener (health, metrics, the schema registry); kept across restarts."""
        assert self.http_port is not None, "the broker has not started"
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 30.0) -> None:
        args = [
            sys.executable,
            "-m",
            "millpond",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--kafka-listen",
            f"127.0.0.1:{self.port}",
            # Never the default 8080: a developer's own broker may hold it. A restart keeps the
            # port, so a schema registry client keeps its URL.
            "--http-listen",
            f"127.0.0.1:{self.http_port or 0}",
        ]
        for setting in self.settings:
            args += ["--set", setting]
        self.starts += 1
        log = self.log_path.open("ab")
        offset = self.log_path.stat().st_size
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            args, stdout=log, stderr=log, env=env, preexec_fn=self._limit_fds
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            match = READY.search(text)
            if match:
                self.port = int(match["port"])
                if match["http"] is not None:
                    self.http_port = int(match["http"])
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}:\n{text}")
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"broker not ready after {timeout}s:\n{self.log()}")

    def _limit_fds(self) -> None:
        if self.fd_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.fd_limit, self.fd_limit))

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, *, hard: bool = False) -> None:
        if hard:
            self.kill()
        else:
            assert self.stop() == 0, self.log()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def running_broker(
    data_dir: Path, *settings: str, fd_limit: int | None = None
) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(data_dir, *settings, fd_limit=fd_limit)
    broker.start()
    try:
        yield broker
    finally:
        if broker.process is not None and broker.process.poll() is None:
            try:
                broker.stop(timeout=15)
            except subprocess.TimeoutExpired:
                broker.kill()
