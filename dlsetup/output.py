"""Output plumbing shared by every command: the versioned JSON envelope and the console.

The envelope is what ``--json`` prints::

    {"schema": "dlsetup.doctor", "schema_version": 1, "dlsetup_version": "0.1.0",
     "created": "2026-11-26T14:00:00Z", "data": {...}}

Each ``schema`` name has a JSON Schema file in ``dlsetup/schemas/<name>.schema.json`` shipped in the
package; tests validate real output against it so the format cannot drift silently.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import math
import os
import sys
from importlib import resources
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from dlsetup import __version__

if TYPE_CHECKING:
    from rich.console import Console


def to_jsonable(value: Any) -> Any:
    """Convert dataclasses, enums, paths, tuples and mappings into plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, float) and not math.isfinite(value):  # NaN/inf are not JSON
        return None
    return value


def envelope(schema: str, data: Any, *, schema_version: int = 1) -> dict[str, Any]:
    """Wrap ``data`` in the versioned envelope every ``--json`` output uses.

    Args:
        schema: the schema name, for example ``"dlsetup.doctor"``.
        data: a dataclass or plain mapping; converted with :func:`to_jsonable`.
        schema_version: bumped on any incompatible change of ``data``'s shape.
    """
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    return {
        "schema": schema,
        "schema_version": schema_version,
        "dlsetup_version": __version__,
        "created": created.isoformat().replace("+00:00", "Z"),
        "data": to_jsonable(data),
    }


def dumps(document: Any) -> str:
    """Serialise a JSON document the way every command prints it (stable key order, indented)."""
    return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False)


def load_schema(schema: str) -> dict[str, Any]:
    """Load the JSON Schema shipped for ``schema`` (for example ``"dlsetup.doctor"``)."""
    text = resources.files("dlsetup.schemas").joinpath(f"{schema}.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def make_console(*, stderr: bool = False) -> Console:
    """A rich console: colour on a terminal, plain text when piped or when ``NO_COLOR`` is set."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    plain = bool(os.environ.get("NO_COLOR")) or not stream.isatty()
    return Console(
        file=stream,
        no_color=plain,
        color_system=None if plain else "auto",
        highlight=False,
        emoji=False,
        width=None if stream.isatty() else 120,
        soft_wrap=False,
    )
