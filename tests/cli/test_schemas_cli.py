"""`millpond schemas list/show/register/check` against the real broker's schema registry.

One broker serves every test here; each test uses its own subjects, so the tests do not depend
on one another's order. Two tests talk to a small fake registry instead, for answers Millpond's
registry never gives (an older registry's register answer, a server that is not a registry).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import urllib.request
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from typing import ClassVar

import pytest

from tests.cli.support import assert_one_line_error
from tests.cli.support import run_cli
from tests.cli.support import table_rows
from tests.support.server import running_broker

pytestmark = [pytest.mark.compat, pytest.mark.timeout(120)]

REGISTERED = re.compile(
    r"registered (?P<subject>\S+) version (?P<version>\d+) with schema id (?P<id>\d+)"
)

ORDER_V1: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "fields": [{"name": "id", "type": "long"}],
}
# Adds a field with a default: a BACKWARD-compatible change.
ORDER_V2: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "note", "type": "string", "default": ""},
    ],
}
# Adds a field without a default: a reader of this schema cannot read data written by v1/v2.
ORDER_BAD: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "amount_cents", "type": "long"},
    ],
}
ADDRESS: dict[str, Any] = {
    "type": "record",
    "name": "Address",
    "namespace": "shop",
    "fields": [{"name": "street", "type": "string"}],
}
CUSTOMER: dict[str, Any] = {
    "type": "record",
    "name": "Customer",
    "namespace": "shop",
    "fields": [{"name": "address", "type": "shop.Address"}],
}
JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": "integer"}},
    "required": ["id"],
}


@dataclass(frozen=True)
class Registry:
    url: str
    # `schemas list` run before any test registered anything.
    first_list: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    data_dir: Path = tmp_path_factory.mktemp("schemas-cli") / "data"
    with running_broker(data_dir) as broker:
        first_list = run_cli("schemas", "list", "--registry", broker.http_url)
        yield Registry(broker.http_url, first_list)


def write(tmp_path: Path, name: str, schema: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(schema))
    return path


def schemas(
    registry: Registry, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli("schemas", *args, "--registry", registry.url, stdin=stdin)


def register(registry: Registry, subject: str, file: Path, *args: str) -> tuple[int, int]:
    """Registers `file` under `subject`; returns (version, schema id) from the one output line."""
    result = schemas(registry, "register", subject, str(file), *args)
    assert result.returncode == 0, (result.stdout, result.stderr)
    match = REGISTERED.fullmatch(result.stdout.strip())
    assert match is not None, result.stdout
    assert match["subject"] == subject
    return int(match["version"]), int(match["id"])


def http(registry: Registry, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(registry.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/vnd.schemaregistry.v1+json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def row(output: str, subject: str) -> list[str] | None:
    rows = [cells for cells in table_rows(output) if cells[0] == subject]
    assert len(rows) <= 1, output
    return rows[0] if rows else None


# --- list -----------------------------------------------------------------------------------


def test_list_without_subjects(registry: Registry) -> None:
    assert registry.first_list.returncode == 0, registry.first_list.stderr
    assert registry.first_list.stdout == "no subjects\n"
    assert registry.first_list.stderr == ""


def test_list_shows_versions_latest_id_type_and_level(registry: Registry, tmp_path: Path) -> None:
    register(registry, "list-orders-value", write(tmp_path, "v1.avsc", ORDER_V1))
    _, latest_id = register(registry, "list-orders-value", write(tmp_path, "v2.avsc", ORDER_V2))
    # A subject-level compatibility shows instead of the global default.
    register(registry, "list-full-value", write(tmp_path, "full.avsc", ADDRESS))
    http(registry, "PUT", "/config/list-full-value", {"compatibility": "FULL"})

    result = schemas(registry, "list")
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("┃"))
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == [
        "subject",
        "versions",
        "latest",
        "id",
        "type",
        "compatibility",
    ]
    assert row(result.stdout, "list-orders-value") == [
        "list-orders-value",
        "2",
        "2",
        str(latest_id),
        "AVRO",
        "BACKWARD",
    ]
    full = row(result.stdout, "list-full-value")
    assert full is not None, result.stdout
    assert full[1:3] == ["1", "1"]
    assert full[4:] == ["AVRO", "FULL"]


def test_list_deleted_shows_soft_deleted_subjects(registry: Registry, tmp_path: Path) -> None:
    _, schema_id = register(registry, "list-gone-value", write(tmp_path, "gone.avsc", ORDER_V1))
    assert http(registry, "DELETE", "/subjects/list-gone-value") == [1]

    plain = schemas(registry, "list")
    assert plain.returncode == 0, plain.stderr
    assert row(plain.stdout, "list-gone-value") is None
    deleted = schemas(registry, "list", "--deleted")
    assert deleted.returncode == 0, deleted.stderr
    assert row(deleted.stdout, "list-gone-value") == [
        "list-gone-value",
        "1",
        "1",
        str(schema_id),
        "AVRO",
        "BACKWARD",
    ]


# --- register -------------------------------------------------------------------------------


def test_register_avro_twice_then_incompatible(registry: Registry, tmp_path: Path) -> None:
    v1 = write(tmp_path, "order.avsc", ORDER_V1)
    first = register(registry, "reg-orders-value", v1)
    assert first[0] == 1
    # The same schema again is not a new version: same version, same id.
    again = schemas(registry, "register", "reg-orders-value", str(v1))
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"registered reg-orders-value version 1 with schema id {first[1]}\n"

    bad = schemas(
        registry, "register", "reg-orders-value", str(write(tmp_path, "bad.avsc", ORDER_BAD))
    )
    assert_one_line_error(bad, 1, "incompatible", "amount_cents", "(error 409)")
    assert bad.stdout == ""
    # Nothing was registered.
    assert http(registry, "GET", "/subjects/reg-orders-value/versions") == [1]


def test_register_json_by_suffix(registry: Registry, tmp_path: Path) -> None:
    pytest.importorskip("millpond.registry.formats.json_schema")
    version, schema_id = register(
        registry, "reg-json-value", write(tmp_path, "s.json", JSON_SCHEMA)
    )
    assert version == 1
    shown = schemas(registry, "show", "reg-json-value")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"subject reg-json-value  version 1  id {schema_id}  type JSON"
    assert json.loads("\n".join(lines[1:])) == JSON_SCHEMA


def test_register_type_overrides_the_suffix(registry: Registry, tmp_path: Path) -> None:
    pytest.importorskip("millpond.registry.formats.json_schema")
    # A .avsc suffix says AVRO, but the text is a JSON Schema: --type decides.
    path = write(tmp_path, "really-json.avsc", JSON_SCHEMA)
    register(registry, "reg-typed-value", path, "--type", "json")
    assert http(registry, "GET", "/subjects/reg-typed-value/versions/1")["schemaType"] == "JSON"


def test_register_without_a_known_suffix_is_avro(registry: Registry, tmp_path: Path) -> None:
    register(registry, "reg-txt-value", write(tmp_path, "order.txt", ORDER_V1))
    # Confluent's API leaves schemaType out for AVRO; accept either form.
    document = http(registry, "GET", "/subjects/reg-txt-value/versions/1")
    assert document.get("schemaType", "AVRO") == "AVRO"


def test_register_unknown_type_is_a_usage_error(registry: Registry, tmp_path: Path) -> None:
    result = schemas(
        registry,
        "register",
        "reg-xml-value",
        str(write(tmp_path, "s.avsc", ORDER_V1)),
        "--type",
        "XML",
    )
    assert_one_line_error(result, 2, "--type must be AVRO, JSON or PROTOBUF, not 'XML'")


def test_register_missing_file_is_a_usage_error(registry: Registry, tmp_path: Path) -> None:
    missing = tmp_path / "nope.avsc"
    result = schemas(registry, "register", "reg-missing-value", str(missing))
    assert_one_line_error(result, 2, f"cannot read {missing}", "No such file or directory")


def test_register_non_utf8_file_is_a_usage_error(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "latin1.avsc"
    # A doc with an é, saved in Latin-1: the byte 0xE9 is no UTF-8.
    path.write_bytes(json.dumps({**ORDER_V1, "doc": "café"}, ensure_ascii=False).encode("latin-1"))
    result = schemas(registry, "register", "reg-latin1-value", str(path))
    assert_one_line_error(result, 2, f"cannot read {path}", "UTF-8")


def test_register_from_stdin(registry: Registry) -> None:
    result = schemas(
        registry, "register", "reg-stdin-value", "-", stdin=json.dumps(ORDER_V1).encode()
    )
    assert result.returncode == 0, result.stderr
    match = REGISTERED.fullmatch(result.stdout.strip())
    assert match is not None, result.stdout
    assert (match["subject"], match["version"]) == ("reg-stdin-value", "1")
    document = http(registry, "GET", "/subjects/reg-stdin-value/versions/1")
    assert json.loads(document["schema"]) == ORDER_V1
    assert document["id"] == int(match["id"])


def test_register_with_a_reference(registry: Registry, tmp_path: Path) -> None:
    register(registry, "ref-address-value", write(tmp_path, "address.avsc", ADDRESS))
    customer = write(tmp_path, "customer.avsc", CUSTOMER)
    # Without the reference, shop.Address is an unknown name.
    unresolved = schemas(registry, "register", "ref-customer-value", str(customer))
    assert_one_line_error(unresolved, 1, "shop.Address", "(error 42201)")

    reference = "shop.Address=ref-address-value:1"
    version, schema_id = register(
        registry, "ref-customer-value", customer, "--reference", reference
    )
    assert version == 1
    shown = schemas(registry, "show", "ref-customer-value")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"subject ref-customer-value  version 1  id {schema_id}  type AVRO"
    assert lines[1] == "reference shop.Address -> ref-address-value version 1"
    assert json.loads("\n".join(lines[2:])) == CUSTOMER

    checked = schemas(
        registry, "check", "ref-customer-value", str(customer), "--reference", reference
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == "compatible with ref-customer-value\n"


@pytest.mark.parametrize("reference", ["foo", "foo=subject", "foo=subject:latest", "=s:1"])
def test_malformed_reference_is_a_usage_error(
    registry: Registry, tmp_path: Path, reference: str
) -> None:
    result = schemas(
        registry,
        "register",
        "ref-bad-value",
        str(write(tmp_path, "c.avsc", CUSTOMER)),
        "--reference",
        reference,
    )
    assert_one_line_error(result, 2, f"--reference {reference!r} is not NAME=SUBJECT:VERSION")


# --- show -----------------------------------------------------------------------------------


def test_show_latest_and_a_version(registry: Registry, tmp_path: Path) -> None:
    _, id1 = register(registry, "show-orders-value", write(tmp_path, "v1.avsc", ORDER_V1))
    _, id2 = register(registry, "show-orders-value", write(tmp_path, "v2.avsc", ORDER_V2))
    assert id1 != id2

    latest = schemas(registry, "show", "show-orders-value")
    assert latest.returncode == 0, latest.stderr
    lines = latest.stdout.splitlines()
    assert lines[0] == f"subject show-orders-value  version 2  id {id2}  type AVRO"
    # Piped: the schema itself, pretty-printed (one key per line), with no rich markup.
    assert lines[1] == "{"
    assert '  "type": "record",' in lines
    assert json.loads("\n".join(lines[1:])) == ORDER_V2

    first = schemas(registry, "show", "show-orders-value", "--version", "1")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == f"subject show-orders-value  version 1  id {id1}  type AVRO"
    assert json.loads("\n".join(lines[1:])) == ORDER_V1

    missing_version = schemas(registry, "show", "show-orders-value", "--version", "7")
    assert_one_line_error(missing_version, 1, "(error 40402)")


def test_show_unknown_subject(registry: Registry) -> None:
    result = schemas(registry, "show", "show-nobody-value")
    assert_one_line_error(result, 1, "show-nobody-value", "(error 40401)")


# --- check ----------------------------------------------------------------------------------


def test_check_compatible_and_incompatible(registry: Registry, tmp_path: Path) -> None:
    register(registry, "check-orders-value", write(tmp_path, "v1.avsc", ORDER_V1))
    register(registry, "check-orders-value", write(tmp_path, "v2.avsc", ORDER_V2))

    ok = schemas(registry, "check", "check-orders-value", str(tmp_path / "v2.avsc"))
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "compatible with check-orders-value\n", "")

    bad_file = str(write(tmp_path, "bad.avsc", ORDER_BAD))
    bad = schemas(registry, "check", "check-orders-value", bad_file)
    assert bad.returncode == 1, bad.stderr
    assert bad.stderr == ""
    lines = bad.stdout.splitlines()
    assert lines[0] == "incompatible with check-orders-value:"
    assert len(lines) >= 2
    assert all(line.startswith("  - ") for line in lines[1:])
    assert "amount_cents" in lines[1]
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in lines[1]
    assert "version 2" in lines[1]

    against_v1 = schemas(registry, "check", "check-orders-value", bad_file, "--version", "1")
    assert against_v1.returncode == 1, against_v1.stderr
    lines = against_v1.stdout.splitlines()
    assert lines[0] == "incompatible with check-orders-value:"
    assert "amount_cents" in lines[1]
    assert "version 1" in lines[1]
    # A check registers nothing.
    assert http(registry, "GET", "/subjects/check-orders-value/versions") == [1, 2]


def test_check_unknown_subject(registry: Registry, tmp_path: Path) -> None:
    path = str(write(tmp_path, "bad.avsc", ORDER_BAD))
    # Nothing registered yet: nothing to be incompatible with.
    result = schemas(registry, "check", "check-nobody-value", path)
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "compatible with check-nobody-value\n",
        "",
    )
    # A named version of it, though, does not exist.
    versioned = schemas(registry, "check", "check-nobody-value", path, "--version", "1")
    assert_one_line_error(versioned, 1, "Version 1 not found", "(error 40402)")


# --- the registry option --------------------------------------------------------------------


def test_unreachable_registry() -> None:
    result = run_cli("schemas", "list", "--registry", "http://127.0.0.1:1")
    assert_one_line_error(
        result, 1, "cannot reach the schema registry at http://127.0.0.1:1", "refused"
    )


def test_registry_must_be_http() -> None:
    result = run_cli("schemas", "list", "--registry", "ftp://x")
    assert_one_line_error(result, 2, "--registry", "'ftp://x' is not an http:// or https:// URL")


def test_registry_from_the_environment(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A trailing slash is dropped, not doubled into the paths.
    monkeypatch.setenv("MILLPOND_SCHEMA_REGISTRY_URL", registry.url + "/")
    path = str(write(tmp_path, "v1.avsc", ORDER_V1))
    result = run_cli("schemas", "register", "env-orders-value", path)
    assert result.returncode == 0, result.stderr
    assert REGISTERED.fullmatch(result.stdout.strip()) is not None, result.stdout
    assert http(registry, "GET", "/subjects/env-orders-value/versions") == [1]


# --- a fake registry ------------------------------------------------------------------------


class _FakeRegistry(BaseHTTPRequestHandler):
    """Answers a register as a registry older than Confluent 7.7 does (the id only), and any
    GET with an HTML page, as a server that is no registry would."""

    requests: ClassVar[list[tuple[str, str, Any]]] = []

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        self.requests.append(("POST", self.path, body))
        if self.path == "/subjects/old-value/versions":
            self._answer(200, b'{"id": 42}', "application/json")
        elif self.path == "/subjects/old-value":
            answer = {"subject": "old-value", "version": 3, "id": 42, "schema": body["schema"]}
            self._answer(200, json.dumps(answer).encode(), "application/json")
        else:
            self._answer(404, b"{}", "application/json")

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, None))
        self._answer(200, b"<html>not a registry</html>", "text/html")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_registry() -> Iterator[str]:
    _FakeRegistry.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_register_with_an_older_registry(fake_registry: str, tmp_path: Path) -> None:
    path = str(write(tmp_path, "v1.avsc", ORDER_V1))
    result = run_cli("schemas", "register", "old-value", path, "--registry", fake_registry)
    assert result.returncode == 0, result.stderr
    # The version comes from looking the schema up, once the registry answered only its id.
    assert result.stdout == "registered old-value version 3 with schema id 42\n"
    assert [(method, where) for method, where, _ in _FakeRegistry.requests] == [
        ("POST", "/subjects/old-value/versions"),
        ("POST", "/subjects/old-value"),
    ]
    assert _FakeRegistry.requests[0][2] == {"schema": json.dumps(ORDER_V1), "schemaType": "AVRO"}


def test_a_server_that_is_not_a_registry(fake_registry: str) -> None:
    result = run_cli("schemas", "list", "--registry", fake_registry)
    assert_one_line_error(
        result, 1, f"{fake_registry}/subjects did not answer JSON; is it a schema registry?"
    )


# --- a registry that answers what no registry should ----------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:notaport", "Port could not be cast to integer value as 'notaport'"),
        ("http://127.0.0.1:99999", "Port out of range 0-65535"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://:8080", "is not an http:// or https:// URL"),
    ],
)
def test_registry_must_be_a_valid_url(url: str, reason: str) -> None:
    result = run_cli("schemas", "list", "--registry", url)
    assert_one_line_error(result, 2, "--registry", repr(url), reason)


def _answering(documents: dict[str, Any]) -> Callable[[_FakeRegistry], None]:
    """A do_GET/do_POST for _FakeRegistry: `documents[path]` as JSON, 404 for other paths."""

    def respond(handler: _FakeRegistry) -> None:
        handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        path = handler.path.partition("?")[0]
        if path in documents:
            handler._answer(200, json.dumps(documents[path]).encode(), "application/json")
        else:
            handler._answer(404, b'{"error_code": 40401, "message": "no"}', "application/json")

    return respond


def _answer_with(monkeypatch: pytest.MonkeyPatch, documents: dict[str, Any]) -> None:
    monkeypatch.setattr(_FakeRegistry, "do_GET", _answering(documents))
    monkeypatch.setattr(_FakeRegistry, "do_POST", _answering(documents))


VERSION_1: dict[str, Any] = {"subject": "s", "version": 1, "id": 7, "schema": '"string"'}

WRONG_SHAPES: list[Any] = [
    # list
    (["list"], {"/subjects": {"subjects": ["s"]}}, "the subjects"),
    (["list"], {"/subjects": [1]}, "the subjects"),
    (["list"], {"/subjects": ["s"], "/subjects/s/versions": []}, "the versions of s"),
    (["list"], {"/subjects": ["s"], "/subjects/s/versions": ["1"]}, "the versions of s"),
    (
        ["list"],
        {"/subjects": ["s"], "/subjects/s/versions": [1], "/subjects/s/versions/1": [VERSION_1]},
        "version 1 of s",
    ),
    (
        ["list"],
        {
            "/subjects": ["s"],
            "/subjects/s/versions": [1],
            "/subjects/s/versions/1": {"subject": "s", "version": 1},
        },
        "version 1 of s",
    ),
    (
        ["list"],
        {
            "/subjects": ["s"],
            "/subjects/s/versions": [1],
            "/subjects/s/versions/1": VERSION_1,
            "/config/s": ["BACKWARD"],
        },
        "the compatibility level of s",
    ),
    # show
    (["show", "s"], {"/subjects/s/versions/latest": [VERSION_1]}, "version latest of s"),
    *[
        (["show", "s"], {"/subjects/s/versions/latest": without}, "version latest of s")
        for without in (
            {key: value for key, value in VERSION_1.items() if key != missing}
            for missing in VERSION_1
        )
    ],
    (["show", "s"], {"/subjects/s/versions/latest": {**VERSION_1, "schema": 1}}, "of s"),
    (
        ["show", "s"],
        {"/subjects/s/versions/latest": {**VERSION_1, "references": [{"name": "a"}]}},
        "version latest of s",
    ),
    (
        ["show", "s"],
        {"/subjects/s/versions/latest": {**VERSION_1, "references": {"name": "a"}}},
        "version latest of s",
    ),
    # register
    (["register", "s", "SCHEMA"], {"/subjects/s/versions": [7]}, "registering under s"),
    (["register", "s", "SCHEMA"], {"/subjects/s/versions": {"version": 1}}, "registering"),
    (
        ["register", "s", "SCHEMA"],
        {"/subjects/s/versions": {"id": 7}, "/subjects/s": {"id": 7}},
        "looking up the schema under s",
    ),
    (
        ["register", "s", "SCHEMA"],
        {"/subjects/s/versions": {"id": 7}, "/subjects/s": ["v"]},
        "looking up the schema under s",
    ),
    # check
    (
        ["check", "s", "SCHEMA"],
        {"/compatibility/subjects/s/versions": {"messages": []}},
        "checking against s",
    ),
    (
        ["check", "s", "SCHEMA"],
        {"/compatibility/subjects/s/versions": [True]},
        "checking against s",
    ),
    (
        ["check", "s", "SCHEMA"],
        {"/compatibility/subjects/s/versions": {"is_compatible": "yes"}},
        "checking against s",
    ),
    (
        ["check", "s", "SCHEMA"],
        {"/compatibility/subjects/s/versions": {"is_compatible": False, "messages": "bad"}},
        "checking against s",
    ),
]


@pytest.mark.parametrize(
    ("args", "documents", "what"),
    WRONG_SHAPES,
    ids=[f"{args[0]}-{number}" for number, (args, _, _) in enumerate(WRONG_SHAPES)],
)
def test_an_answer_of_the_wrong_shape(
    fake_registry: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    documents: dict[str, Any],
    what: str,
) -> None:
    _answer_with(monkeypatch, documents)
    schema = str(write(tmp_path, "v1.avsc", ORDER_V1))
    args = [schema if arg == "SCHEMA" else arg for arg in args]
    result = run_cli("schemas", *args, "--registry", fake_registry)
    assert_one_line_error(
        result,
        1,
        f"the registry at {fake_registry} answered an unexpected document for ",
        what,
    )


def test_the_right_shapes_still_work(
    fake_registry: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The same fake registry, answering the shapes the checks accept.
    _answer_with(
        monkeypatch,
        {
            "/subjects": ["s"],
            "/subjects/s/versions": [1, 2],
            "/subjects/s/versions/2": {**VERSION_1, "version": 2, "schemaType": "JSON"},
            "/config/s": {"compatibilityLevel": "FULL"},
        },
    )
    listed = run_cli("schemas", "list", "--registry", fake_registry)
    assert listed.returncode == 0, listed.stderr
    assert table_rows(listed.stdout) == [["s", "2", "2", "7", "JSON", "FULL"]]

    _answer_with(monkeypatch, {"/subjects/s/versions/latest": VERSION_1})
    shown = run_cli("schemas", "show", "s", "--registry", fake_registry)
    assert (shown.returncode, shown.stdout) == (
        0,
        'subject s  version 1  id 7  type AVRO\n"string"\n',
    )

    _answer_with(
        monkeypatch,
        {"/compatibility/subjects/s/versions": {"is_compatible": False, "messages": ["x"]}},
    )
    schema = str(write(tmp_path, "v1.avsc", ORDER_V1))
    checked = run_cli("schemas", "check", "s", schema, "--registry", fake_registry)
    assert (checked.returncode, checked.stdout) == (1, "incompatible with s:\n  - x\n")


def _broken_http(reply: bytes) -> Callable[[_FakeRegistry], None]:
    """A do_GET for _FakeRegistry that answers `reply`, raw bytes that are not valid HTTP."""

    def respond(handler: _FakeRegistry) -> None:
        handler.wfile.write(reply)

    return respond


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (b"not http at all\r\n\r\n", "not http at all"),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n[1, 2", "IncompleteRead"),
    ],
)
def test_a_registry_that_breaks_http(
    fake_registry: str, monkeypatch: pytest.MonkeyPatch, reply: bytes, reason: str
) -> None:
    monkeypatch.setattr(_FakeRegistry, "do_GET", _broken_http(reply))
    result = run_cli("schemas", "list", "--registry", fake_registry)
    assert_one_line_error(
        result, 1, f"cannot reach the schema registry at {fake_registry}: ", reason
    )
