"""Find, load, check and compile the contract in ``schemas/`` once, at start-up.

``schemas/`` is the single source of truth. In a checkout it sits beside the package; in an
installed wheel it is package data at ``mockserver/_schemas``. A schema that is not valid JSON
or not a valid Draft 2020-12 schema stops the start with :class:`SchemaLoadError` naming the
file, instead of failing later on the first request.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from referencing import Registry, Resource

from .timefmt import parse_rfc3339

#: Documents every mock needs; the key is how code refers to each one.
REQUIRED = {
    "events": "events.schema.json",
    "token": "token.schema.json",
    "error": "error.schema.json",
    "success": "success.schema.json",
    "scenario": "scenario.schema.json",
    "openapi": "openapi.json",
}


class SchemaLoadError(Exception):
    """A file of ``schemas/`` is missing, unreadable, or not a valid schema."""


def schema_dir(override: str | None = None) -> Path:
    """The installed package data first, then the checkout's ``schemas/`` folder."""
    if override:
        return Path(override)
    here = Path(__file__).resolve().parent
    for candidate in (here / "_schemas", here.parent / "schemas"):
        if (candidate / REQUIRED["events"]).is_file():
            return candidate
    raise SchemaLoadError(f"schemas/ not found beside {here} nor inside the installed package")


def _format_checker() -> FormatChecker:
    """Draft 2020-12 formats, with ``date-time`` checked by our strict RFC 3339 parser.

    jsonschema checks ``date-time`` only when an optional package is installed; pinning our own
    checker makes the verdict the same on every machine, and identical to what the server does.
    """
    checker = FormatChecker()
    checker.checks("date-time")(
        lambda value: not isinstance(value, str) or bool(parse_rfc3339(value))
    )
    return checker


@dataclass(frozen=True)
class SchemaSet:
    directory: Path
    documents: dict[str, dict[str, Any]]
    validators: dict[str, Draft202012Validator]
    version: str
    openapi: dict[str, Any]


def load_schemas(directory: str | Path | None = None) -> SchemaSet:
    root = schema_dir(str(directory) if directory else None)
    documents: dict[str, dict[str, Any]] = {}
    for name, filename in REQUIRED.items():
        path = root / filename
        try:
            documents[name] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SchemaLoadError(f"{path}: missing") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise SchemaLoadError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(documents[name], dict):
            raise SchemaLoadError(f"{path}: must hold a JSON object")
    resources = [
        (doc.get("$id", filename), Resource.from_contents(doc))
        for name, doc in documents.items()
        if name != "openapi"
        for filename in [REQUIRED[name]]
    ]
    registry: Registry[Any] = Registry().with_resources(resources)
    checker = _format_checker()
    validators = {}
    for name, doc in documents.items():
        if name == "openapi":
            continue
        try:
            Draft202012Validator.check_schema(doc)
        except SchemaError as exc:
            where = "/" + "/".join(str(p) for p in exc.absolute_path)
            raise SchemaLoadError(
                f"{root / REQUIRED[name]}: invalid JSON Schema at {where}: {exc.message}"
            ) from None
        validators[name] = Draft202012Validator(doc, registry=registry, format_checker=checker)
    scenario_id = documents["scenario"].get("$id", REQUIRED["scenario"])
    validators["rule"] = Draft202012Validator(
        {"$ref": f"{scenario_id}#/$defs/rule"}, registry=registry, format_checker=checker
    )
    openapi = documents["openapi"]
    if not str(openapi.get("openapi", "")).startswith("3.1"):
        raise SchemaLoadError(f"{root / REQUIRED['openapi']}: must be an OpenAPI 3.1 document")
    version = str(openapi.get("info", {}).get("version", "0"))
    return SchemaSet(root, documents, validators, version, bundle_openapi(documents))


def bundle_openapi(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Inline the JSON Schema files into ``components/schemas`` so ``/openapi.json`` stands alone.

    References such as ``events.schema.json`` or ``events.schema.json#/$defs/event`` become
    ``#/components/schemas/EventsRequest`` and ``#/components/schemas/EventsRequest_event``;
    each schema's ``$defs`` are hoisted beside it. Tools like schemathesis then need no
    access to our files.
    """
    spec = copy.deepcopy(documents["openapi"])
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    names: dict[str, str] = {}
    for key, filename in REQUIRED.items():
        if key == "openapi":
            continue
        names[filename] = documents[key].get("title", key)
        if "$id" in documents[key]:
            names[documents[key]["$id"]] = names[filename]

    def target(ref: str, local_owner: str | None) -> str:
        base, _, fragment = ref.partition("#")
        owner = names.get(base) if base else local_owner
        if owner is None:
            return ref
        if fragment.startswith("/$defs/"):
            return f"#/components/schemas/{owner}_{fragment[len('/$defs/') :]}"
        return f"#/components/schemas/{owner}"

    def rewrite(node: Any, owner: str | None) -> Any:
        if isinstance(node, dict):
            out = {k: rewrite(v, owner) for k, v in node.items()}
            if isinstance(out.get("$ref"), str):
                out["$ref"] = target(out["$ref"], owner)
            return out
        if isinstance(node, list):
            return [rewrite(v, owner) for v in node]
        return node

    for key, filename in REQUIRED.items():
        if key == "openapi":
            continue
        doc = copy.deepcopy(documents[key])
        owner = names[filename]
        defs = doc.pop("$defs", {})
        for meta in ("$schema", "$id"):
            doc.pop(meta, None)
        components[owner] = rewrite(doc, owner)
        for def_name, sub in defs.items():
            components[f"{owner}_{def_name}"] = rewrite(sub, owner)
    for path_key in ("paths", "webhooks"):
        if path_key in spec:
            spec[path_key] = rewrite(spec[path_key], None)
    for comp_key, comp in list(spec.get("components", {}).items()):
        if comp_key != "schemas":
            spec["components"][comp_key] = rewrite(comp, None)
    for comp_name, comp in list(components.items()):
        components[comp_name] = rewrite(comp, None)
    return spec
