"""Read the per-node documents ``dlsetup fleet report`` merges, each checked against its schema.

A document is refused, by file name, when it is not JSON, not a ``dlsetup.doctor`` envelope, of a
``schema_version`` this dlsetup does not read, or when a field has the wrong type. Every field
dlsetup's doctor has ever written is checked against the doctor schema shipped with this version;
a field an older doctor did not write yet may be absent (its fact reads ``not reported``), and a
field a newer doctor adds is ignored. ``data`` must hold at least ``system``, ``nvidia`` and
``findings`` (every doctor document since the first has them).

A node is named by its file (``doctor-gpu01.json`` and ``gpu01.json`` are ``gpu01``): the name the
launcher wrote it under (Slurm's ``%N`` is the node's name in ``scontrol``, the name the drain lines
need), not ``data.system.hostname``, which may be a fully qualified name or differ from Slurm's
NodeName. The host name is kept to catch one document copied under two names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlsetup.errors import InputError

DOCTOR_SCHEMA = "dlsetup.doctor"
#: The doctor ``schema_version`` values this dlsetup reads.
READ_VERSIONS = (1,)
#: Every doctor document since the first has these sections.
CORE_SECTIONS = ("system", "nvidia", "findings")
#: A node's ``doctor --json`` document is a few dozen KiB; a larger file is not one.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024

FIX = "give the output of `dlsetup doctor --json` (one file per node, named after the node)"


@dataclass(frozen=True)
class NodeDocument:
    """One node's document, read and checked.

    Attributes:
        node: the node's name, from the file's name.
        hostname: ``data.system.hostname`` (``None`` when the document has none).
        source: the file.
        data: the document's ``data`` object.
    """

    node: str
    hostname: str | None
    source: str
    data: Mapping[str, Any]


def node_name(path: Path) -> str:
    """``doctor-gpu01.json`` -> ``gpu01``; ``gpu01.json`` -> ``gpu01``."""
    stem = path.name.removesuffix(".json")
    return stem.removeprefix("doctor-") or stem


class SchemaError(Exception):
    """A value does not match the schema; ``str()`` names its path (``data.system.hostname``)."""


Check = Callable[[Any, str], None]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,),
    "number": (int, float), "boolean": (bool,), "null": (type(None),),
}  # fmt: skip


def _type_check(names: str | list[str]) -> Check:
    wanted = [names] if isinstance(names, str) else list(names)
    kinds = tuple(k for n in wanted for k in _TYPES[n])
    no_bool = "boolean" not in wanted  # True is an int to Python, not to JSON

    def check(value: Any, path: str) -> None:
        if not isinstance(value, kinds) or (no_bool and isinstance(value, bool)):
            raise SchemaError(f"{path} must be {' or '.join(wanted)}")

    return check


class _Compiler:
    """Turn the doctor schema into nested checks, read leniently: ``required`` only where
    :func:`_validator` keeps it (older documents lack fields), unknown properties allowed (newer
    documents add some). Only the keywords the doctor schema uses are known; a value is walked
    only where the schema describes it, so the check costs a walk of the document's known part."""

    def __init__(self, schema: dict[str, Any], required: dict[str, list[str]]) -> None:
        self.defs: dict[str, Any] = schema["$defs"]
        self.required = required
        self.compiled: dict[str, Check] = {}

    def ref(self, name: str) -> Check:
        if name not in self.compiled:

            def later(value: Any, path: str) -> None:  # a definition that refers to itself
                self.compiled[name](value, path)

            self.compiled[name] = later
            self.compiled[name] = self.node(self.defs[name], keep=self.required.get(name))
        return self.compiled[name]

    def node(self, schema: dict[str, Any], keep: list[str] | None = None) -> Check:
        checks: list[Check] = []
        if "$ref" in schema:
            return self.ref(schema["$ref"].rsplit("/", 1)[-1])
        if "anyOf" in schema:
            checks.append(self.any_of(schema["anyOf"]))
        if "type" in schema:
            checks.append(_type_check(schema["type"]))
        if "const" in schema or "enum" in schema:
            allowed = [schema["const"]] if "const" in schema else list(schema["enum"])
            checks.append(_in(allowed))
        if "pattern" in schema:
            checks.append(_pattern(schema["pattern"]))
        if "properties" in schema or keep:
            checks.append(self.properties(schema.get("properties", {}), keep or []))
        if "items" in schema:
            checks.append(self.items(schema["items"]))
        if len(checks) == 1:
            return checks[0]

        def check(value: Any, path: str) -> None:
            for one in checks:
                one(value, path)

        return check

    def any_of(self, choices: list[dict[str, Any]]) -> Check:
        """``[X, Missing]``: a ``reason`` key picks Missing, else X names the error itself."""
        missing = {"$ref": "#/$defs/missing"}
        if len(choices) == 2 and missing in choices:
            as_missing = self.node(missing, keep=["reason", "detail"])
            other = self.node(next(c for c in choices if c != missing))

            def either(value: Any, path: str) -> None:
                if isinstance(value, dict) and "reason" in value:
                    as_missing(value, path)
                else:
                    other(value, path)

            return either
        options = [self.node(c) for c in choices]

        def any_one(value: Any, path: str) -> None:
            errors = []
            for option in options:
                try:
                    option(value, path)
                    return
                except SchemaError as exc:
                    errors.append(str(exc))
            raise SchemaError(" or ".join(dict.fromkeys(errors)))

        return any_one

    def properties(self, schema: dict[str, Any], keep: list[str]) -> Check:
        known = {name: self.node(sub) for name, sub in schema.items()}

        def check(value: Any, path: str) -> None:
            if not isinstance(value, dict):
                return
            absent = [k for k in keep if k not in value]
            if absent:
                raise SchemaError(f"{path} lacks {', '.join(absent)}")
            for name, one in known.items():
                if name in value:
                    one(value[name], f"{path}.{name}")

        return check

    def items(self, schema: dict[str, Any]) -> Check:
        one = self.node(schema)

        def check(value: Any, path: str) -> None:
            if isinstance(value, list):
                for i, item in enumerate(value):
                    one(item, f"{path}[{i}]")

        return check


def _in(allowed: list[Any]) -> Check:
    def check(value: Any, path: str) -> None:
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise SchemaError(f"{path} must be one of {allowed}")

    return check


def _pattern(pattern: str) -> Check:
    import re

    compiled = re.compile(pattern)

    def check(value: Any, path: str) -> None:
        if isinstance(value, str) and not compiled.search(value):
            raise SchemaError(f"{path} must match {pattern}")

    return check


@functools.cache
def _validator() -> Check:
    from dlsetup.output import load_schema

    schema = load_schema(DOCTOR_SCHEMA)
    required = {"data": list(CORE_SECTIONS), "finding": ["id", "severity"]}
    compiler = _Compiler(schema, required)
    data = compiler.ref("data")

    def check(document: Any, path: str) -> None:
        for key in ("schema", "schema_version", "data"):
            if key not in document:
                raise SchemaError(f"{path} lacks {key}")
        data(document["data"], f"{path}.data")

    return check


def _check_version(path: Path, document: Mapping[str, Any]) -> None:
    version = document.get("schema_version")
    if type(version) is int and version in READ_VERSIONS:
        return
    writer = document.get("dlsetup_version")
    by = f" (written by dlsetup {writer})" if isinstance(writer, str) else ""
    if type(version) is not int:
        what = f"has no integer schema_version (found {version!r})"
    elif version > max(READ_VERSIONS):
        what = f"is schema_version {version}{by}, newer than this dlsetup reads"
    else:
        what = f"is schema_version {version}{by}, older than this dlsetup reads"
    from dlsetup import __version__

    raise InputError(
        f"{path}: the {DOCTOR_SCHEMA} document {what} (dlsetup {__version__} reads "
        f"schema_version {', '.join(map(str, READ_VERSIONS))})",
        fix="run the same dlsetup version on every node (`dlsetup --version`) and write the "
        "documents again",
    )


def read_node_document(path: Path) -> NodeDocument:
    """Read one node's ``dlsetup doctor --json`` document and check it against its schema.

    Raises:
        InputError: the file cannot be read, is not JSON, is not a ``dlsetup.doctor`` envelope of
            a version this dlsetup reads, or a field has the wrong type; the message names the
            file and the field.
    """
    from dlsetup.reading import load_json

    document = load_json(path, what="fleet document", max_bytes=MAX_DOCUMENT_BYTES, fix=FIX)
    if not isinstance(document, dict) or document.get("schema") != DOCTOR_SCHEMA:
        schema = document.get("schema") if isinstance(document, dict) else None
        raise InputError(f"{path}: not a {DOCTOR_SCHEMA} document (schema: {schema!r})", fix=FIX)
    _check_version(path, document)
    data = document.get("data")
    if not isinstance(data, dict):
        raise InputError(f"{path}: its data is not an object", fix=FIX)
    try:
        _validator()(document, "document")
    except SchemaError as exc:
        raise InputError(f"{path}: malformed {DOCTOR_SCHEMA} document: {exc}", fix=FIX) from exc
    system = data.get("system")
    host = system.get("hostname") if isinstance(system, dict) else None
    return NodeDocument(
        node=node_name(path),
        hostname=host.strip() if isinstance(host, str) and host.strip() else None,
        source=str(path),
        data=data,
    )


def collect_paths(inputs: Iterable[Path]) -> list[Path]:
    """Files as given; a directory stands for its ``*.json`` files (sorted, not recursive).

    Raises:
        InputError: a path does not exist, or a directory holds no ``*.json`` file.
    """
    paths: list[Path] = []
    for item in inputs:
        if item.is_dir():
            # not only regular files: a FIFO or a dangling link named *.json is refused by name
            found = sorted(p for p in item.glob("*.json") if not p.is_dir())
            if not found:
                raise InputError(
                    f"{item}: the directory holds no *.json file",
                    fix="write one `dlsetup doctor --json` document per node into it",
                )
            paths.extend(found)
        elif item.exists():
            paths.append(item)
        else:
            raise InputError(f"{item}: no such file or directory", fix="check the path")
    return paths
