"""A fast stand-in for jsonschema's ``iter_errors`` on the POST events body, built from the schema.

``schemas/events.schema.json`` stays the single source of truth: :class:`FastChecker` reads
every rule (types, ``required`` lists, lengths, item counts, the ``eventTime`` pattern and
format, the reserved-name ``not``) from the loaded document when it is built. Nothing is
hard-coded: change a limit in the schema and the fast path follows (or refuses, below).

Two forms are compiled from the schema:

- ``valid(instance) -> bool`` is the hot path: Python source *generated* from the schema
  (:class:`_ValidGenerator`: inlined property look-ups, ``for`` loops over arrays,
  ``isinstance`` guards, precompiled regular expressions, the validator's own format
  functions), compiled once with ``exec``. Schema values reach that code as named constants,
  never as text. A valid body costs one early-exiting walk and no error objects.
- ``collect(instance, path, out)``, plain closures, reproduces jsonschema's error stream
  *exactly* when a body is invalid: the same errors (keyword, ``validator_value``, instance,
  absolute path, message) in the same order, because it visits keywords in schema order and
  descends the way jsonschema's Draft 2020-12 keywords do. It skips any subtree that
  ``valid`` accepts (a valid subtree has no errors), so only the broken events are walked.
  ``mockserver.validation`` classifies these :class:`Failure` records with the very code that
  classifies ``ValidationError``s.

Only the keywords listed in :data:`SUPPORTED` (plus annotations such as ``title``) are
understood. Anything else, anywhere reachable in the schema, makes construction raise
:class:`UnsupportedSchema`, and the caller must use jsonschema instead: the fast path never
silently ignores a rule it does not know.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

#: Validation keywords this module implements with jsonschema's Draft 2020-12 semantics.
SUPPORTED = frozenset(
    {
        "type",
        "required",
        "properties",
        "items",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "not",
        "$ref",
    }
)
#: Keywords with no validation effect under Draft 2020-12 (jsonschema ignores them too).
ANNOTATIONS = frozenset(
    {
        "$schema",
        "$comment",
        "$defs",
        "title",
        "description",
        "examples",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)

Path = tuple[Any, ...]
Collect = Callable[[Any, Path, list["Failure"]], None]
Valid = Callable[[Any], bool]


class UnsupportedSchema(ValueError):
    """The schema uses something the fast path does not implement; use jsonschema instead."""


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Number)


#: Draft 2020-12's type checker (jsonschema's ``draft202012_type_checker``).
_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "integer": _is_integer,
    "null": lambda v: v is None,
    "number": _is_number,
    "object": lambda v: isinstance(v, dict),
    "string": lambda v: isinstance(v, str),
}
#: Single types that are one ``isinstance`` check (the common case, kept inline).
_PLAIN_TYPES: dict[str, type] = {"array": list, "object": dict, "string": str, "boolean": bool}


class Failure:
    """One schema error, shaped like the parts of ``jsonschema.ValidationError`` we read.

    ``message`` is built only when asked for, with jsonschema's wording.
    """

    __slots__ = ("absolute_path", "instance", "validator", "validator_value")

    def __init__(self, validator: str | None, value: Any, instance: Any, path: Path) -> None:
        self.validator = validator
        self.validator_value = value
        self.instance = instance
        self.absolute_path = path

    @property
    def message(self) -> str:
        kw, value, instance = self.validator, self.validator_value, self.instance
        if kw == "type":
            types = [value] if isinstance(value, str) else value
            return f"{instance!r} is not of type {', '.join(repr(t) for t in types)}"
        if kw in ("minLength", "minItems"):
            return f"{instance!r} {'should be non-empty' if value == 1 else 'is too short'}"
        if kw in ("maxLength", "maxItems"):
            return f"{instance!r} {'is expected to be empty' if value == 0 else 'is too long'}"
        if kw == "pattern":
            return f"{instance!r} does not match {value!r}"
        if kw == "format":
            return f"{instance!r} is not a {value!r}"
        if kw == "not":
            return f"{instance!r} should not be valid under {value!r}"
        if kw == "items":  # ``items: false``
            rest = instance if len(instance) != 1 else instance[0]
            return f"Expected at most 0 items but found {len(instance)} extra: {rest!r}"
        return f"False schema does not allow {instance!r}"

    def __repr__(self) -> str:
        return f"Failure({self.validator!r}, {list(self.absolute_path)!r})"


class _Required(Failure):
    """A ``required`` error: jsonschema's ``validator_value`` is the whole list."""

    __slots__ = ("missing",)

    def __init__(self, required: list[str], missing: str, instance: Any, path: Path) -> None:
        super().__init__("required", required, instance, path)
        self.missing = missing

    @property
    def message(self) -> str:
        return f"{self.missing!r} is a required property"


def _collect_nothing(instance: Any, path: Path, out: list[Failure]) -> None:
    return None


def _collect_false(instance: Any, path: Path, out: list[Failure]) -> None:
    out.append(Failure(None, None, instance, path))


def _length(value: Any, keyword: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise UnsupportedSchema(f"{keyword} must be a non-negative integer, not {value!r}")
    return value


class FastChecker:
    """The compiled events schema. ``iter_errors(doc)`` mirrors jsonschema's, only faster."""

    def __init__(self, schema: dict[str, Any], *, format_checker: Any = None) -> None:
        if not isinstance(schema, dict):
            raise UnsupportedSchema("the root schema must be an object")
        self._root = schema
        checkers = getattr(format_checker, "checkers", None) if format_checker else None
        #: format name -> (function, exceptions that mean "does not conform"), as jsonschema
        #: holds them; unknown formats are not asserted, exactly as in jsonschema.
        self._formats: dict[str, tuple[Callable[[Any], Any], Any]] | None = (
            dict(checkers) if checkers is not None else None
        )
        self._collect_memo: dict[int, Collect] = {}
        self._checked: set[int] = set()
        self._vet(schema, "#", root=True)
        # One generated module holds ``valid`` for the root and for every subschema that
        # ``collect`` descends into, so that collecting skips subtrees that are valid.
        self._generator = _ValidGenerator(self)
        self._valid_of: dict[str, Valid] = {}
        entry = self._generator.function(schema)
        self._collect: Collect = self._compile_collect(schema)
        #: The generated Python of ``valid`` (for the curious).
        self.source = self._generator.source()
        namespace: dict[str, Any] = dict(self._generator.consts)
        exec(compile(self.source, "<fastcheck: events schema>", "exec"), namespace)
        self._valid_of.update((name, namespace[name]) for name in self._generator.names.values())
        #: ``valid(instance) -> bool``: does ``instance`` satisfy the schema?
        self.valid: Valid = self._valid_of[entry]

    def iter_errors(self, instance: Any) -> list[Failure]:
        """Every schema error of ``instance``, in jsonschema's order (empty when valid)."""
        if self.valid(instance):
            return []
        out: list[Failure] = []
        self._collect(instance, (), out)
        return out

    # -- vetting ------------------------------------------------------------------------------

    def _resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise UnsupportedSchema(f"$ref {ref!r}: only local '#/...' references are supported")
        fragment = unquote(ref[1:])
        if fragment and not fragment.startswith("/"):
            raise UnsupportedSchema(f"$ref {ref!r}: anchors are not supported")
        node: Any = self._root
        for token in fragment.split("/")[1:] if fragment else []:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdecimal() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise UnsupportedSchema(f"$ref {ref!r} does not resolve")
        if not isinstance(node, (dict, bool)):
            raise UnsupportedSchema(f"$ref {ref!r} does not point at a schema")
        return node

    def _vet(self, schema: Any, where: str, *, root: bool = False) -> None:
        """Raise unless every keyword reachable from ``schema`` is one we implement."""
        if isinstance(schema, bool):
            return
        if not isinstance(schema, dict):
            raise UnsupportedSchema(f"{where}: a schema must be an object or a boolean")
        if id(schema) in self._checked:
            return
        self._checked.add(id(schema))
        for key, value in schema.items():
            if key == "$id" and root:
                continue
            if key in ANNOTATIONS:
                continue
            if key not in SUPPORTED:
                raise UnsupportedSchema(f"{where}: keyword {key!r} is not supported")
            here = f"{where}/{key}"
            if key == "type":
                types = [value] if isinstance(value, str) else value
                if not isinstance(types, list) or not all(t in _TYPE_TESTS for t in types):
                    raise UnsupportedSchema(f"{here}: unknown type {value!r}")
            elif key == "required":
                if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                    raise UnsupportedSchema(f"{here}: must be a list of strings")
            elif key == "properties":
                if not isinstance(value, dict):
                    raise UnsupportedSchema(f"{here}: must be an object")
                for name, sub in value.items():
                    self._vet_descend(sub, f"{here}/{name}")
            elif key == "items":
                if value is not False:  # ``items: false`` is the keyword's own error
                    self._vet_descend(value, here)
            elif key == "not":
                self._vet(value, here)
            elif key in ("minItems", "maxItems", "minLength", "maxLength"):
                _length(value, here)
            elif key == "pattern":
                if not isinstance(value, str):
                    raise UnsupportedSchema(f"{here}: must be a string")
                try:
                    re.compile(value)
                except re.error as exc:
                    raise UnsupportedSchema(f"{here}: {exc}") from None
            elif key == "format":
                if not isinstance(value, str):
                    raise UnsupportedSchema(f"{here}: must be a string")
            elif key == "$ref":
                self._vet(self._resolve(value), value)

    def _vet_descend(self, schema: Any, where: str) -> None:
        if schema is False:
            # jsonschema reports a ``false`` subschema met through ``properties`` or ``items``
            # one path segment short (``descend`` returns before prepending it). Rather than
            # copy that quirk, leave such schemas to jsonschema.
            raise UnsupportedSchema(f"{where}: a false subschema is not supported here")
        self._vet(schema, where)

    # -- the hot path: is it valid? -------------------------------------------------------------
    # (``valid`` is written by :class:`_ValidGenerator`, below: straight-line Python with
    # inlined property look-ups, ``for`` loops over arrays, ``isinstance`` guards and bound
    # ``re`` searches, so no call per schema node. Keyword order is irrelevant to a yes/no
    # answer; only ``collect`` must, and does, follow jsonschema's order.)

    def _format_functions(self, schema: dict[str, Any]) -> tuple[tuple[Any, Any], ...]:
        if "format" not in schema or self._formats is None:
            return ()
        found = self._formats.get(schema["format"])
        return (found,) if found is not None else ()

    # -- the exact error stream -----------------------------------------------------------------

    def _compile_collect(self, schema: Any) -> Collect:
        if schema is True:
            return _collect_nothing
        if schema is False:
            return _collect_false
        key = id(schema)
        if key in self._collect_memo:
            return self._collect_memo[key]
        cell: list[Collect] = []
        self._collect_memo[key] = lambda i, p, o: cell[0](i, p, o)  # recursion guard
        steps = [
            step
            for keyword, value in schema.items()
            if keyword in SUPPORTED
            for step in [self._step(keyword, value, schema)]
            if step is not None
        ]

        def collect(instance: Any, path: Path, out: list[Failure]) -> None:
            for step in steps:
                step(instance, path, out)

        cell.append(collect)
        self._collect_memo[key] = collect
        return collect

    def _step(self, keyword: str, value: Any, schema: dict[str, Any]) -> Collect | None:
        """One keyword, in jsonschema's Draft 2020-12 semantics (``_keywords.py``)."""
        if keyword == "type":
            types = [value] if isinstance(value, str) else value
            tests = [_TYPE_TESTS[t] for t in types]

            def type_(v: Any, path: Path, out: list[Failure]) -> None:
                if not any(test(v) for test in tests):
                    out.append(Failure("type", value, v, path))

            return type_
        if keyword == "required":

            def required(v: Any, path: Path, out: list[Failure]) -> None:
                if isinstance(v, dict):
                    for name in value:
                        if name not in v:
                            out.append(_Required(value, name, v, path))

            return required
        if keyword == "properties":
            subs = [
                (name, self._generator.function(sub), self._compile_collect(sub))
                for name, sub in value.items()
            ]
            valid_of = self._valid_of

            def properties(v: Any, path: Path, out: list[Failure]) -> None:
                if isinstance(v, dict):
                    for name, valid, sub in subs:
                        if name in v and not valid_of[valid](v[name]):
                            sub(v[name], (*path, name), out)

            return properties
        if keyword == "items":
            if value is False:

                def no_items(v: Any, path: Path, out: list[Failure]) -> None:
                    if isinstance(v, list) and v:
                        out.append(Failure("items", False, v, path))

                return no_items
            item_valid = self._generator.function(value)
            sub = self._compile_collect(value)
            valid_of = self._valid_of

            def items(v: Any, path: Path, out: list[Failure]) -> None:
                if isinstance(v, list):
                    valid = valid_of[item_valid]
                    for index, x in enumerate(v):
                        if not valid(x):  # a valid item has no errors: skip walking it
                            sub(x, (*path, index), out)

            return items
        if keyword in ("minItems", "minLength"):
            kind: type = list if keyword == "minItems" else str

            def at_least(v: Any, path: Path, out: list[Failure]) -> None:
                if isinstance(v, kind) and len(v) < value:
                    out.append(Failure(keyword, value, v, path))

            return at_least
        if keyword in ("maxItems", "maxLength"):
            kind = list if keyword == "maxItems" else str

            def at_most(v: Any, path: Path, out: list[Failure]) -> None:
                if isinstance(v, kind) and len(v) > value:
                    out.append(Failure(keyword, value, v, path))

            return at_most
        if keyword == "pattern":
            search = re.compile(value).search

            def pattern(v: Any, path: Path, out: list[Failure]) -> None:
                if isinstance(v, str) and search(v) is None:
                    out.append(Failure("pattern", value, v, path))

            return pattern
        if keyword == "format":
            found = self._format_functions(schema)
            if not found:
                return None
            func, raises = found[0]

            def format_(v: Any, path: Path, out: list[Failure]) -> None:
                try:
                    ok = func(v)
                except raises:
                    ok = False
                if not ok:
                    out.append(Failure("format", value, v, path))

            return format_
        if keyword == "not":
            negated = self._generator.function(value)
            valid_of = self._valid_of

            def not_(v: Any, path: Path, out: list[Failure]) -> None:
                if valid_of[negated](v):
                    out.append(Failure("not", value, v, path))

            return not_
        if keyword == "$ref":
            return self._compile_collect(self._resolve(value))
        raise UnsupportedSchema(f"keyword {keyword!r} is not supported")  # pragma: no cover


class _ValidGenerator:
    """Writes the Python source of ``valid(v) -> bool`` for a vetted schema.

    Each schema node is inlined where it is used; a node reached again while it is being
    written (a recursive ``$ref``), the subschema of ``not`` and anything nested too deeply
    for Python's block limit become functions of their own. Values from the schema (limits,
    names, patterns, format functions) reach the code as named constants, never as text.
    """

    MAX_DEPTH = 8  # nested blocks before a node gets a function of its own (Python allows 20)

    def __init__(self, checker: FastChecker) -> None:
        self.checker = checker
        self.consts: dict[str, Any] = {"_MISSING": object()}
        self.names: dict[int, str] = {}
        self.blocks: list[str] = []
        self.variables = 0

    def source(self) -> str:
        return "\n\n".join(self.blocks) + "\n"

    def const(self, value: Any, prefix: str) -> str:
        name = f"_{prefix}{len(self.consts)}"
        self.consts[name] = value
        return name

    def variable(self) -> str:
        self.variables += 1
        return f"v{self.variables}"

    def function(self, schema: Any) -> str:
        key = id(schema)
        if key in self.names:
            return self.names[key]
        name = self.names[key] = f"valid_{len(self.names)}"
        body: list[str] = []
        self.emit(schema, "v0", 1, body, frozenset())
        self.blocks.append("\n".join([f"def {name}(v0):", *body, "    return True"]))
        return name

    def emit(
        self, schema: Any, var: str, depth: int, out: list[str], active: frozenset[int]
    ) -> None:
        """Append statements that ``return False`` when ``var`` breaks ``schema``."""
        pad = "    " * depth
        if schema is True:
            return
        if schema is False:
            out.append(f"{pad}return False")
            return
        if id(schema) in active or depth > self.MAX_DEPTH:
            out.append(f"{pad}if not {self.function(schema)}({var}):")
            out.append(f"{pad}    return False")
            return
        active = active | {id(schema)}
        known: type | None = None
        if "type" in schema:
            types = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
            if len(types) == 1 and types[0] in _PLAIN_TYPES:
                known = _PLAIN_TYPES[types[0]]
                test = f"isinstance({var}, {known.__name__})"
            else:
                tests = [_TYPE_TESTS[t] for t in types]
                any_type = self.const(lambda v: any(t(v) for t in tests), "type")
                test = f"{any_type}({var})"
            out.append(f"{pad}if not {test}:")
            out.append(f"{pad}    return False")
        for kind, rules in (
            (str, self.string_rules),
            (dict, self.object_rules),
            (list, self.array_rules),
        ):
            if known is not None and known is not kind:
                continue  # the type test already refused every instance these rules apply to
            block: list[str] = []
            inner = depth if known is kind else depth + 1
            rules(schema, var, inner, block, active)
            if block and known is not kind:
                out.append(f"{pad}if isinstance({var}, {kind.__name__}):")
            out.extend(block)
        for func, raises in self.checker._format_functions(schema):
            out.append(f"{pad}try:")
            out.append(f"{pad}    if not {self.const(func, 'format')}({var}):")
            out.append(f"{pad}        return False")
            out.append(f"{pad}except {self.const(raises, 'raises')}:")
            out.append(f"{pad}    return False")
        if "not" in schema:
            out.append(f"{pad}if {self.function(schema['not'])}({var}):")
            out.append(f"{pad}    return False")
        if "$ref" in schema:
            self.emit(self.checker._resolve(schema["$ref"]), var, depth, out, active)

    def bounds(self, schema: dict[str, Any], low: str, high: str, var: str, pad: str) -> list[str]:
        checks = []
        if schema.get(low, 0) > 0:
            checks.append(f"len({var}) < {self.const(schema[low], 'min')}")
        if high in schema:
            checks.append(f"len({var}) > {self.const(schema[high], 'max')}")
        if not checks:
            return []
        return [f"{pad}if {' or '.join(checks)}:", f"{pad}    return False"]

    def string_rules(
        self, schema: dict[str, Any], var: str, depth: int, out: list[str], active: frozenset[int]
    ) -> None:
        pad = "    " * depth
        out.extend(self.bounds(schema, "minLength", "maxLength", var, pad))
        if "pattern" in schema:
            search = self.const(re.compile(schema["pattern"]).search, "search")
            out.append(f"{pad}if {search}({var}) is None:")
            out.append(f"{pad}    return False")

    def object_rules(
        self, schema: dict[str, Any], var: str, depth: int, out: list[str], active: frozenset[int]
    ) -> None:
        pad = "    " * depth
        required = schema.get("required", [])
        for name in required:
            out.append(f"{pad}if {self.const(name, 'name')} not in {var}:")
            out.append(f"{pad}    return False")
        for name, sub in schema.get("properties", {}).items():
            child = self.variable()
            block: list[str] = []
            key = self.const(name, "name")
            if name in required:  # present: the check above returned otherwise
                self.emit(sub, child, depth, block, active)
                if block:
                    out.append(f"{pad}{child} = {var}[{key}]")
                    out.extend(block)
                continue
            self.emit(sub, child, depth + 1, block, active)
            if block:
                out.append(f"{pad}{child} = {var}.get({key}, _MISSING)")
                out.append(f"{pad}if {child} is not _MISSING:")
                out.extend(block)

    def array_rules(
        self, schema: dict[str, Any], var: str, depth: int, out: list[str], active: frozenset[int]
    ) -> None:
        pad = "    " * depth
        out.extend(self.bounds(schema, "minItems", "maxItems", var, pad))
        if "items" in schema:
            child = self.variable()
            block: list[str] = []
            self.emit(schema["items"], child, depth + 1, block, active)
            if block:
                out.append(f"{pad}for {child} in {var}:")
                out.extend(block)
