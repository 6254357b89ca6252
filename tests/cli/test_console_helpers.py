"""Pure helpers of produce/consume and the shared option checks: no sockets."""

from __future__ import annotations

import pytest
import typer

from millpond.cli.client import check_bootstrap
from millpond.cli.client import parse_configs
from millpond.cli.console import check_format
from millpond.cli.console import format_message
from millpond.cli.console import split_key
from millpond.cli.errors import CliError
from millpond.cli.errors import UsageError


def test_split_key() -> None:
    assert split_key(b"k:v:w", b":", 1) == (b"k", b"v:w")
    assert split_key(b"no key", None, 1) == (None, b"no key")
    assert split_key(b"::", b"::", 1) == (b"", b"")
    with pytest.raises(CliError, match="line 7 has no key separator ':'"):
        split_key(b"value only", b":", 7)


def test_format_message() -> None:
    rendered = format_message(
        "%t/%p@%o %k=%v (%T) 100%% %x",
        key=None,
        value=b"\xffbytes",
        topic="orders",
        partition=2,
        offset=41,
        timestamp_ms=1700,
    )
    assert rendered == b"orders/2@41 =\xffbytes (1700) 100% %x"


def test_check_format_rejects_unknown_tokens() -> None:
    assert check_format("%k %v") == "%k %v"
    with pytest.raises(typer.BadParameter, match="%x"):
        check_format("%v %x")
    with pytest.raises(typer.BadParameter):
        check_format("%v %")


@pytest.mark.parametrize(
    "value", ["127.0.0.1:9092", "a:1,b:2", "[::1]:9092", "broker-1.local:19092"]
)
def test_check_bootstrap_accepts(value: str) -> None:
    assert check_bootstrap(value) == value


@pytest.mark.parametrize("value", ["localhost", "host:", "host:abc", "host:0", "host:70000", ""])
def test_check_bootstrap_rejects(value: str) -> None:
    with pytest.raises(typer.BadParameter, match="HOST:PORT"):
        check_bootstrap(value)


def test_parse_configs() -> None:
    assert parse_configs(["retention.ms=1000", "cleanup.policy = compact"]) == {
        "retention.ms": "1000",
        "cleanup.policy": "compact",
    }
    with pytest.raises(UsageError, match="bad --config"):
        parse_configs(["retention.ms"])
