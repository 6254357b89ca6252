"""The `millpond` command."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

# Typer 0.29 vendors click; its exceptions are what a usage error raises.
from typer._click import exceptions as click_exceptions

from millpond.cli import console
from millpond.cli import dlq
from millpond.cli import groups
from millpond.cli import schemas
from millpond.cli import topics
from millpond.cli.errors import USAGE_ERROR
from millpond.cli.errors import fail
from millpond.config import BrokerConfig
from millpond.config import ConfigError
from millpond.config import parse_assignments
from millpond.config import read_properties

app = typer.Typer(
    name="millpond",
    help="Millpond: a Kafka-compatible broker in one Python process.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root() -> None:
    """Millpond: a Kafka-compatible broker in one Python process."""


def build_config(
    config_file: Path | None,
    settings: list[str],
    listen: str | None,
    advertised: str | None,
    http_listen: str | None = None,
) -> BrokerConfig:
    values: dict[str, str] = {}
    if config_file is not None:
        values.update(read_properties(config_file))
    values.update(parse_assignments(settings))
    if listen is not None:
        values["kafka.listen"] = listen
    if advertised is not None:
        values["advertised.listener"] = advertised
    if http_listen is not None:
        values["http.listen"] = http_listen
    return BrokerConfig(values)


@app.command()
def serve(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where topics, offsets and state live.")
    ] = Path("millpond-data"),
    kafka_listen: Annotated[
        str | None, typer.Option("--kafka-listen", help="HOST:PORT for Kafka clients.")
    ] = None,
    advertised_listener: Annotated[
        str | None,
        typer.Option("--advertised-listener", help="HOST:PORT clients are told to use."),
    ] = None,
    http_listen: Annotated[
        str | None,
        typer.Option(
            "--http-listen",
            help="HOST:PORT for /health, /metrics and the schema registry "
            "(default 127.0.0.1:8080).",
        ),
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="A properties file of broker configs.")
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="A broker config as key=value (repeatable)."),
    ] = None,
) -> None:
    """Run the broker on a local data directory until SIGTERM or Ctrl-C."""
    try:
        config = build_config(
            config_file, settings or [], kafka_listen, advertised_listener, http_listen
        )
    except ConfigError as error:
        raise fail(str(error)) from None
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from millpond.app import install_uvloop
    from millpond.app import serve as run_broker

    install_uvloop()
    try:
        asyncio.run(run_broker(data_dir, config))
    except OSError as error:
        raise fail(f"cannot start: {error}", 1) from None
    except ValueError as error:
        raise fail(f"cannot start: {error}", 1) from None


app.add_typer(topics.app, name="topics")
app.add_typer(groups.app, name="groups")
app.add_typer(dlq.app, name="dlq")
app.add_typer(schemas.app, name="schemas")
app.command("produce")(console.produce)
app.command("consume")(console.consume)


def main() -> None:
    """Entry point: usage errors become one line naming the problem, exit code 2."""
    try:
        result = app(standalone_mode=False)
    except click_exceptions.UsageError as error:
        message = error.format_message()
        if message:  # empty when no arguments were given and the help was shown
            typer.echo(f"millpond: error: {message}", err=True)
        sys.exit(USAGE_ERROR)
    except click_exceptions.ClickException as error:
        typer.echo(f"millpond: error: {error.format_message()}", err=True)
        sys.exit(error.exit_code)
    except typer.Abort:
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)
