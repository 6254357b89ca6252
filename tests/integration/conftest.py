"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import BrokerProcess
from tests.support.server import running_broker


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the many small parametrized cases (each uses its own names)."""
    with running_broker(tmp_path_factory.mktemp("shared") / "data") as process:
        yield process
