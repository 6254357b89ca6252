from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from kio.static.primitive import Records

# kio registers strategies for its primitive types but not for opaque record bytes.
st.register_type_strategy(Records, st.binary(max_size=64).map(Records))

settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile("ci")


from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.support.server import BrokerProcess  # noqa: E402
from tests.support.server import running_broker  # noqa: E402


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A real broker on a free loopback port with a fresh data dir; stopped after the test."""
    with running_broker(tmp_path / "data") as process:
        yield process
