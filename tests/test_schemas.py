"""The contract files themselves, and the payload fixtures judged as their folder says.

Fixtures are judged twice: offline by the same code the ``validate`` command uses, and by a
real server whose clock is frozen at the fixtures' epoch, so a fixture named for a rule proves
that exact rule is what the server answers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from contract_tests.mock import MockServer
from mockserver.schemas import REQUIRED, SchemaLoadError, load_schemas
from mockserver.timefmt import parse_rfc3339
from mockserver.validation import Contract, parse_json
from tests.conftest import FIXTURE_EPOCH, FIXTURES, ROOT, Client, set_clock

VALID = sorted((FIXTURES / "payloads" / "valid").glob("*.json"))
INVALID = sorted((FIXTURES / "payloads" / "invalid").glob("*.json"))
EPOCH = parse_rfc3339(FIXTURE_EPOCH) or 0.0


def _stage(rule: str) -> str:
    if rule.startswith("json.") or rule.endswith(".type"):
        return "unmarshal"
    if rule.endswith((".required", ".min_items", ".max_items")) or rule == "accountId.max_length":
        return "request"
    return "event"


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract(load_schemas())


def test_fixture_folders_are_populated() -> None:
    assert len(VALID) >= 8
    assert len(INVALID) >= 30


def test_every_schema_is_valid_draft_2020_12() -> None:
    for key, filename in REQUIRED.items():
        doc = json.loads((ROOT / "schemas" / filename).read_text())
        if key != "openapi":
            Draft202012Validator.check_schema(doc)
            assert doc["$schema"].endswith("2020-12/schema")
            assert doc["$id"].endswith(filename)


def test_schemas_dir_holds_only_contract_files() -> None:
    assert sorted(p.name for p in (ROOT / "schemas").iterdir()) == sorted(REQUIRED.values())


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_fixture_is_accepted_offline(contract: Contract, path: Path) -> None:
    verdict = contract.check(parse_json(path.read_bytes()), EPOCH)
    assert verdict.ok, [v.to_dict() for v in verdict.request + verdict.event_violations]
    assert verdict.warnings == [], [v.to_dict() for v in verdict.warnings]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_fixture_breaks_exactly_its_rule_offline(contract: Contract, path: Path) -> None:
    rule = path.name.removesuffix(".json")
    try:
        verdict = contract.check(parse_json(path.read_bytes()), EPOCH)
    except Exception as err:  # parse_json raises the unmarshal error itself
        found = {v.rule for v in err.violations}  # type: ignore[attr-defined]
        assert found == {rule}
        return
    stage = _stage(rule)
    found_by_stage = {
        "unmarshal": {v.rule for v in verdict.unmarshal},
        "request": {v.rule for v in verdict.request},
        "event": {v.rule for v in verdict.event_violations},
    }
    assert found_by_stage[stage] == {rule}, found_by_stage
    earlier = {"unmarshal": [], "request": ["unmarshal"], "event": ["unmarshal", "request"]}
    for other in earlier[stage]:
        assert not found_by_stage[other], found_by_stage


@pytest.fixture(scope="module")
def frozen_mock(tmp_path_factory: pytest.TempPathFactory) -> MockServer:
    server = MockServer(journal=tmp_path_factory.mktemp("fixtures") / "j.sqlite3")
    set_clock(server, now=FIXTURE_EPOCH, frozen=True)
    yield server
    server.stop()


@pytest.mark.parametrize("path", VALID + INVALID, ids=lambda p: p.parent.name + "/" + p.name)
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_fixture_over_http(frozen_mock: MockServer, path: Path, version: str) -> None:
    client = Client(frozen_mock)
    raw = path.read_bytes()
    response = client.v1(raw=raw) if version == "v1" else client.v2(raw=raw)
    payload = response.json()
    if path.parent.name == "valid":
        assert response.status_code == 200, payload
        assert payload["data"]["unprocessedRecords"] == []
        assert payload["data"]["details"]["warnings"] == []
        return
    rule = path.name.removesuffix(".json")
    stage = _stage(rule)
    if stage == "event":
        assert response.status_code == 200, payload
        records = payload["data"]["unprocessedRecords"]
        assert records, payload
        assert {r["error"]["code"] for r in records} == {"ValidationError"}
        assert {d["rule"] for r in records for d in r["error"]["details"]} == {rule}
        return
    expected = "RequestJsonUnmarshalError" if stage == "unmarshal" else "RequestValidationError"
    assert (response.status_code, payload["data"]["code"]) == (400, expected), payload
    assert {v["rule"] for v in payload["data"]["details"]["violations"]} == {rule}


def _broken_copy(tmp_path: Path, filename: str, text: str) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", target)
    (target / filename).write_text(text)
    return target


def test_broken_schema_is_refused_with_its_file_name(tmp_path: Path) -> None:
    events = json.loads((ROOT / "schemas" / "events.schema.json").read_text())
    events["properties"]["accountId"]["maxLength"] = "sixty-four"
    folder = _broken_copy(tmp_path, "events.schema.json", json.dumps(events))
    with pytest.raises(SchemaLoadError, match=r"events\.schema\.json.*accountId/maxLength"):
        load_schemas(folder)


def test_unparseable_schema_is_refused(tmp_path: Path) -> None:
    folder = _broken_copy(tmp_path, "token.schema.json", "{not json")
    with pytest.raises(SchemaLoadError, match=r"token\.schema\.json: not valid JSON"):
        load_schemas(folder)


def test_openapi_must_be_3_1(tmp_path: Path) -> None:
    spec = json.loads((ROOT / "schemas" / "openapi.json").read_text())
    spec["openapi"] = "3.0.3"
    folder = _broken_copy(tmp_path, "openapi.json", json.dumps(spec))
    with pytest.raises(SchemaLoadError, match=r"OpenAPI 3\.1"):
        load_schemas(folder)


def test_bundled_openapi_has_no_file_refs() -> None:
    spec = load_schemas().openapi
    text = json.dumps(spec)
    assert ".schema.json" not in text.replace('"$id"', "")
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: object = spec
        for part in ref[2:].split("/"):
            assert isinstance(node, dict), ref
            assert part in node, ref
            node = node[part]
