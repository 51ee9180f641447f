"""Scenario files: a named, documented set of fault rules in YAML or TOML.

Files are parsed with safe loaders only (YAML's ``SafeLoader``, ``tomllib``), so a scenario can
describe data and never run code. Every mistake is reported as ``FILE:LINE: /pointer: message``
so the partner can jump to it; line numbers come from YAML's node marks, and for TOML from the
table and key the pointer names.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from .model import check_rule

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SUFFIXES = (".yaml", ".yml", ".toml")


class ScenarioError(Exception):
    """A scenario file cannot be found, parsed or validated; the message says where."""


def bundled_dir() -> Path | None:
    """``fixtures/scenarios`` in a checkout, ``mockserver/_scenarios`` in an installed wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_scenarios", here.parent / "fixtures" / "scenarios"):
        if candidate.is_dir():
            return candidate
    return None


def bundled_names() -> list[str]:
    folder = bundled_dir()
    if folder is None:
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix in SUFFIXES)


def find(name_or_path: str, *, bundled_only: bool = False) -> Path:
    """A scenario file by path or bundled name. ``bundled_only`` (the admin API) never
    touches the file system beyond the bundled folder: a remote caller must not make the
    server read, and quote in its errors, a file of its choosing."""
    path = Path(name_or_path)
    if not bundled_only and path.is_file():
        return path
    folder = bundled_dir()
    if folder is not None and "/" not in name_or_path:
        for suffix in SUFFIXES:
            if (folder / f"{name_or_path}{suffix}").is_file():
                return folder / f"{name_or_path}{suffix}"
    known = ", ".join(bundled_names()) or "none"
    if bundled_only:
        raise ScenarioError(
            f"{name_or_path!r} is not a bundled scenario ({known}); "
            'send your own rules as {"rules": [...]}'
        )
    raise ScenarioError(f"{name_or_path}: no such file, nor a bundled scenario ({known})")


def _yaml_line(root: Any, parts: list[str]) -> int | None:
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif (
            isinstance(node, yaml.SequenceNode) and part.isdecimal() and int(part) < len(node.value)
        ):
            child = node.value[int(part)]
        else:
            child = None
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


def _toml_line(text: str, parts: list[str]) -> int | None:
    lines = text.splitlines()
    if len(parts) >= 2 and parts[0] == "rules" and parts[1].isdecimal():
        headers = [i for i, line in enumerate(lines) if re.match(r"\s*\[\[\s*rules\s*\]\]", line)]
        index = int(parts[1])
        if index >= len(headers):
            return None
        start = headers[index]
        end = headers[index + 1] if index + 1 < len(headers) else len(lines)
        for key in reversed(parts[2:]):
            if key.isdecimal():
                continue
            for i in range(start, end):
                if re.match(rf"\s*(\S*\.)?{re.escape(key)}\s*=", lines[i]) or re.search(
                    rf"[{{,]\s*{re.escape(key)}\s*=", lines[i]
                ):
                    return i + 1
        return start + 1
    for i, line in enumerate(lines):
        if parts and re.match(rf"\s*{re.escape(parts[0])}\s*=", line):
            return i + 1
    return None


def load(path: Path, validator: Draft202012Validator) -> dict[str, Any]:
    """Parse and validate one scenario file; raises :class:`ScenarioError` listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    root = None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    problems: list[tuple[list[str], str]] = []
    for err in validator.iter_errors(data):
        parts = [str(p) for p in err.absolute_path]
        unexpected = re.findall(r"'([^']+)' was unexpected", err.message)
        if err.validator == "additionalProperties" and len(unexpected) == 1:
            parts.append(unexpected[0])  # point at the stray key's own line
            problems.append((parts, "unknown field (not allowed here)"))
            continue
        problems.append((parts, err.message))
    if not problems and isinstance(data, dict):
        for i, rule in enumerate(data.get("rules", [])):
            for v in check_rule(rule, f"/rules/{i}"):
                problems.append((v.pointer.strip("/").split("/"), v.message))
    if problems:
        lines = []
        for parts, message in sorted(problems):
            line = _toml_line(text, parts) if path.suffix == ".toml" else _yaml_line(root, parts)
            where = f"{path}:{line}" if line else str(path)
            lines.append(f"{where}: /{'/'.join(parts)}: {message}")
        raise ScenarioError("invalid scenario\n  " + "\n  ".join(lines))
    if not isinstance(data, dict):  # pragma: no cover - the schema requires an object
        raise ScenarioError(f"{path}: must hold a mapping")
    data.setdefault("name", path.stem)
    return data


def named_rules(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The scenario's rules, each with an id (``<scenario>-<n>`` unless it names its own).

    Stable ids keep a scenario's counters and seeded draws the same wherever it is loaded.
    """
    return [
        {**rule, "id": rule.get("id") or f"{data['name']}-{i + 1}"}
        for i, rule in enumerate(data["rules"])
    ]
