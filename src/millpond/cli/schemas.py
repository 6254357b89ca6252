"""`millpond schemas …`: list, show, register and check schemas through the schema registry's
REST API, so it works against Millpond's registry and against Confluent's or karapace alike."""

from __future__ import annotations

import contextlib
import http.client
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated
from typing import Any
from typing import TypeVar
from urllib.parse import quote
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from millpond.cli.client import reports_errors
from millpond.cli.errors import CliError
from millpond.cli.errors import UsageError

DEFAULT_REGISTRY = "http://127.0.0.1:8080"
TIMEOUT_S = 10.0
_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_TYPES_BY_SUFFIX = {".avsc": "AVRO", ".json": "JSON", ".proto": "PROTOBUF"}

T = TypeVar("T")

app = typer.Typer(
    help="List, show, register and check schemas in the schema registry.",
    no_args_is_help=True,
    add_completion=False,
)


def _check_registry(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number in range
    except ValueError as error:
        raise typer.BadParameter(f"{url!r} is not a valid URL: {error}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise typer.BadParameter(f"{url!r} is not an http:// or https:// URL")
    return url.rstrip("/")


RegistryUrl = Annotated[
    str,
    typer.Option(
        "--registry",
        envvar="MILLPOND_SCHEMA_REGISTRY_URL",
        metavar="URL",
        callback=_check_registry,
        help="The schema registry (Millpond's HTTP listener, or any Confluent-compatible one).",
    ),
]


class Registry:
    """A few calls of Confluent's REST API; errors become CliError with the registry's words."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s)
            self.url + path, data=data, method=method
        )
        request.add_header("Accept", _CONTENT_TYPE)
        if data is not None:
            request.add_header("Content-Type", _CONTENT_TYPE)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
                answer = response.read()
        except urllib.error.HTTPError as error:
            raise CliError(_error_message(error)) from None
        # OSError covers URLError, timeouts and resets; HTTPException a server that breaks HTTP
        # (a bad status line, a short body); ValueError a URL that http.client refuses.
        except (OSError, http.client.HTTPException, ValueError) as error:
            reason = getattr(error, "reason", error)
            text = str(reason) or type(reason).__name__
            raise CliError(f"cannot reach the schema registry at {self.url}: {text}") from None
        try:
            return json.loads(answer or b"null")
        except ValueError:  # JSONDecodeError, or bytes that are not even UTF-8
            raise CliError(
                f"{self.url}{path} did not answer JSON; is it a schema registry?"
            ) from None

    def expect(self, document: Any, what: str, **fields: type) -> dict[str, Any]:
        """`document` if it is an object with `fields` of those types; else a CliError, for
        the registry is not speaking the API we know."""
        if isinstance(document, dict) and all(
            key in document and isinstance(document[key], kind) for key, kind in fields.items()
        ):
            return document
        raise self.unexpected(what)

    def expect_list(self, document: Any, what: str, item: type[T]) -> list[T]:
        """`document` if it is a list of `item`s; else a CliError, as for `expect`."""
        if isinstance(document, list) and all(isinstance(each, item) for each in document):
            return document
        raise self.unexpected(what)

    def unexpected(self, what: str) -> CliError:
        return CliError(f"the registry at {self.url} answered an unexpected document for {what}")


def _error_message(error: urllib.error.HTTPError) -> str:
    try:
        document = json.loads(error.read())
        return f"{document['message']} (error {document['error_code']})"
    except (ValueError, KeyError, TypeError, OSError, http.client.HTTPException):
        return f"the schema registry answered HTTP {error.code} {error.reason}"


def _subject_path(subject: str) -> str:
    return "/subjects/" + quote(subject, safe="")


def _read_schema(file: str, schema_type: str | None) -> tuple[str, str]:
    if file == "-":
        text = sys.stdin.read()
    else:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise UsageError(f"cannot read {file}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"cannot read {file}: it is not UTF-8 text") from None
    if schema_type is None:
        schema_type = _TYPES_BY_SUFFIX.get(Path(file).suffix.lower(), "AVRO")
    schema_type = schema_type.upper()
    if schema_type not in {"AVRO", "JSON", "PROTOBUF"}:
        raise UsageError(f"--type must be AVRO, JSON or PROTOBUF, not {schema_type!r}")
    return schema_type, text


def _references(raw: list[str]) -> list[dict[str, Any]]:
    references = []
    for item in raw:
        name, _, target = item.partition("=")
        subject, _, version = target.rpartition(":")
        if not name or not subject or not version.isdigit():
            raise UsageError(f"--reference {item!r} is not NAME=SUBJECT:VERSION")
        references.append({"name": name, "subject": subject, "version": int(version)})
    return references


def _schema_body(file: str, schema_type: str | None, references: list[str]) -> dict[str, Any]:
    kind, text = _read_schema(file, schema_type)
    body: dict[str, Any] = {"schema": text, "schemaType": kind}
    if references:
        body["references"] = _references(references)
    return body


Subject = Annotated[str, typer.Argument(help="The subject, e.g. orders-value.")]
SchemaFile = Annotated[str, typer.Argument(help="The schema file (.avsc, .json, .proto), or -.")]
SchemaType = Annotated[
    str | None,
    typer.Option(
        "--type", help="AVRO, JSON or PROTOBUF (default: from the file's suffix, else AVRO)."
    ),
]
References = Annotated[
    list[str] | None,
    typer.Option(
        "--reference",
        metavar="NAME=SUBJECT:VERSION",
        help="A schema this one refers to, by the name it uses (repeatable).",
    ),
]


@app.command("list")
@reports_errors
def list_subjects(
    registry: RegistryUrl = DEFAULT_REGISTRY,
    deleted: Annotated[
        bool, typer.Option("--deleted", help="Include soft-deleted subjects.")
    ] = False,
) -> None:
    """List the subjects with their latest version, schema id, type and compatibility."""
    client = Registry(registry)
    query = "?deleted=true" if deleted else ""
    subjects = client.expect_list(client.call("GET", f"/subjects{query}"), "the subjects", str)
    table = Table("subject", "versions", "latest", "id", "type", "compatibility")
    for subject in subjects:
        path = _subject_path(subject)
        what = f"the versions of {subject}"
        versions = client.expect_list(client.call("GET", f"{path}/versions{query}"), what, int)
        if not versions:
            raise client.unexpected(what)
        # "latest" is the latest live version; a soft-deleted subject has none.
        newest = max(versions)
        latest = client.expect(
            client.call("GET", f"{path}/versions/{newest}{query}"),
            f"version {newest} of {subject}",
            version=object,
            id=object,
        )
        level = client.expect(
            client.call("GET", f"/config/{quote(subject, safe='')}?defaultToGlobal=true"),
            f"the compatibility level of {subject}",
        )
        table.add_row(
            subject,
            str(len(versions)),
            str(latest["version"]),
            str(latest["id"]),
            str(latest.get("schemaType", "AVRO")),
            str(level.get("compatibilityLevel", "-")),
        )
    if not subjects:
        typer.echo("no subjects")
        return
    Console().print(table)


@app.command("show")
@reports_errors
def show(
    subject: Subject,
    version: Annotated[
        str, typer.Option("--version", help="A version number, or latest.")
    ] = "latest",
    registry: RegistryUrl = DEFAULT_REGISTRY,
) -> None:
    """Show one version of a subject: its id, type, references and the schema itself."""
    client = Registry(registry)
    what = f"version {version} of {subject}"
    document = client.expect(
        client.call("GET", f"{_subject_path(subject)}/versions/{quote(version, safe='')}"),
        what,
        subject=object,
        version=object,
        id=object,
        schema=str,
    )
    schema_type = document.get("schemaType", "AVRO")
    typer.echo(
        f"subject {document['subject']}  version {document['version']}  id {document['id']}  "
        f"type {schema_type}"
    )
    for item in client.expect_list(document.get("references") or [], what, object):
        reference = client.expect(item, what, name=object, subject=object, version=object)
        typer.echo(
            f"reference {reference['name']} -> {reference['subject']} "
            f"version {reference['version']}"
        )
    text = document["schema"]
    if schema_type != "PROTOBUF":
        with contextlib.suppress(json.JSONDecodeError):
            text = json.dumps(json.loads(text), indent=2)
    console = Console()
    if not console.is_terminal:  # piped: the schema exactly, ready to save or diff
        typer.echo(text)
        return
    console.print(Syntax(text, "protobuf" if schema_type == "PROTOBUF" else "json"))


@app.command("register")
@reports_errors
def register(
    subject: Subject,
    file: SchemaFile,
    schema_type: SchemaType = None,
    reference: References = None,
    registry: RegistryUrl = DEFAULT_REGISTRY,
) -> None:
    """Register a schema under a subject (the registry refuses an incompatible one)."""
    client = Registry(registry)
    body = _schema_body(file, schema_type, reference or [])
    answer = client.expect(
        client.call("POST", f"{_subject_path(subject)}/versions", body),
        f"registering under {subject}",
        id=object,
    )
    version = answer.get("version")
    if version is None:  # registries before Confluent 7.7 answer only the id
        found = client.call("POST", _subject_path(subject), body)
        what = f"looking up the schema under {subject}"
        version = client.expect(found, what, version=object)["version"]
    typer.echo(f"registered {subject} version {version} with schema id {answer['id']}")


@app.command("check")
@reports_errors
def check(
    subject: Subject,
    file: SchemaFile,
    version: Annotated[
        str | None,
        typer.Option(
            "--version", help="Check against this version only (default: as the level says)."
        ),
    ] = None,
    schema_type: SchemaType = None,
    reference: References = None,
    registry: RegistryUrl = DEFAULT_REGISTRY,
) -> None:
    """Check whether a schema could be registered under a subject; exit 1 if it could not."""
    client = Registry(registry)
    body = _schema_body(file, schema_type, reference or [])
    path = f"/compatibility{_subject_path(subject)}/versions"
    if version is not None:
        path += "/" + quote(version, safe="")
    what = f"checking against {subject}"
    answer = client.call("POST", f"{path}?verbose=true", body)
    if client.expect(answer, what, is_compatible=bool)["is_compatible"]:
        typer.echo(f"compatible with {subject}")
        return
    typer.echo(f"incompatible with {subject}:")
    for message in client.expect_list(answer.get("messages") or [], what, object):
        typer.echo(f"  - {message}")
    raise typer.Exit(1)
