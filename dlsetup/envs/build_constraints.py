"""``create --build-constraints FILE``: hashed pins for what ``--allow-build`` builds with.

An sdist the user allows to be built (``--allow-build NAME``) asks for build requirements
(``build-system.requires``, and whatever its backend's ``get_requires_for_build_wheel`` adds) that
no lock records. Given a constraints file of exact pins, each with its sha256 (what ``uv pip
compile build-requirements.in --generate-hashes -o FILE`` writes), uv builds with exactly those
files and refuses any other: ``--build-constraints FILE --require-build-hashes`` (uv 0.13.10
refuses a build requirement the file does not pin, and a file whose hash differs).

The file is read and checked here, before anything is made (a shared stage: both backends' PyPI
installs use it): a bounded read (:mod:`dlsetup.reading`), each requirement parsed with
``packaging``, each an exact ``==`` pin with at least one ``--hash=sha256:HEX``. What uv then reads
is a private copy of the pins as checked (mode 0600, :func:`written`), never the user's file
itself, so a file changed after the check, or an option line (``-r``, ``--index-url``), never
reaches uv.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from dlsetup.errors import InputError

#: the largest build-constraints file read (bytes)
MAX_BYTES = 4 * 1024 * 1024

_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_HASH = re.compile(r"--hash[= ]([A-Za-z0-9]+:[0-9A-Fa-f]+)")


def _fix(path: Path) -> str:
    return (
        "pin each build requirement exactly, with its sha256; generate the file with: uv pip "
        f"compile build-requirements.in --generate-hashes -o {path}"
    )


@dataclass(frozen=True)
class BuildConstraints:
    """A checked build-constraints file.

    Attributes:
        path: the file the user named.
        pins: one line per requirement as uv reads it (``NAME==VERSION[; MARKER] --hash=...``),
            in the file's order.
        names: the pinned names (canonical), for messages.
    """

    path: Path
    pins: tuple[str, ...]
    names: tuple[str, ...]

    def uv_args(self, copy: Path) -> list[str]:
        """uv's options that build with exactly these pins (written to ``copy`` by
        :func:`written`) and nothing unpinned or unhashed."""
        return ["--build-constraints", str(copy), "--require-build-hashes"]


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of each requirement line: comments dropped (`` #`` or a leading
    ``#``), backslash continuations joined, blank lines skipped."""
    lines: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0]
        if not current:
            start = number
        if line.rstrip().endswith("\\"):
            current.append(line.rstrip()[:-1])
            continue
        current.append(line)
        joined = " ".join(part.strip() for part in current).strip()
        current = []
        if joined:
            lines.append((start, joined))
    if current and " ".join(current).strip():
        lines.append((start, " ".join(part.strip() for part in current).strip()))
    return lines


def _pin(path: Path, number: int, line: str) -> tuple[str, str]:
    """The pin uv reads for one requirement line, and its canonical name.

    Raises:
        InputError: an option line, not a requirement, not an exact pin, or no sha256.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    where = f"{path}, line {number}"
    hashes = _HASH.findall(line)
    rest = _HASH.sub(" ", line).strip()
    if "--hash" in rest:
        raise InputError(
            f"{where}: {line!r} has a --hash that is not ALGORITHM:HEX (--hash=sha256:<64 hex "
            "digits>)",
            fix=_fix(path),
        )
    if rest.startswith("-") or " -" in f" {rest}":
        raise InputError(
            f"{where}: {line!r} is an option; a build-constraints file holds only hashed pins "
            "(no -r, -c, -e, --index-url: the sources are the create's)",
            fix=_fix(path),
        )
    try:
        req = Requirement(rest)
    except InvalidRequirement as exc:
        raise InputError(f"{where}: {rest!r} is not a requirement ({exc})", fix=_fix(path)) from exc
    specs = list(req.specifier)
    if (
        req.url
        or len(specs) != 1
        or specs[0].operator not in ("==", "===")
        or "*" in specs[0].version
    ):
        raise InputError(
            f"{where}: {rest!r} is not an exact pin (NAME==VERSION); uv would choose a release "
            "the file does not fix",
            fix=_fix(path),
        )
    lowered = [h.lower() for h in hashes]
    if not any(_SHA256.fullmatch(h) for h in lowered):
        raise InputError(
            f"{where}: {req.name}{specs[0]} has no --hash=sha256:<64 hex digits>; uv refuses an "
            "unhashed build requirement under --require-build-hashes",
            fix=_fix(path),
        )
    marker = f" ; {req.marker}" if req.marker else ""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    text = f"{req.name}{extras}{specs[0]}{marker} " + " ".join(f"--hash={h}" for h in lowered)
    return text, str(canonicalize_name(req.name))


def read_build_constraints(path: Path) -> BuildConstraints:
    """Read and check ``path`` (bounded, :mod:`dlsetup.reading`): every requirement an exact pin
    with at least one sha256 hash.

    Raises:
        InputError: not a readable regular file, not UTF-8, a line that is not a hashed exact
            pin (naming the file, the line number, the value and how to generate the file), or
            no pin at all (empty, or only comments).
    """
    from dlsetup.reading import read_text

    text = read_text(
        path,
        what="build-constraints file",
        max_bytes=MAX_BYTES,
        fix="give --build-constraints a regular file of exact pins with their sha256, as `uv pip "
        "compile build-requirements.in --generate-hashes -o build-constraints.txt` writes",
    )
    pins: list[str] = []
    names: list[str] = []
    for number, line in _logical_lines(text):
        pin, name = _pin(path, number, line)
        pins.append(pin)
        names.append(name)
    if not pins:
        _refuse_empty(path, text)
    return BuildConstraints(path=path, pins=tuple(pins), names=tuple(names))


def _refuse_empty(path: Path, text: str) -> NoReturn:
    """A file without a pin is a mistake (a compile that wrote nothing, the wrong file): under
    ``--require-build-hashes`` it could only refuse every build requirement, after the conda
    packages or the venv were already made. uv warns of a requirements file without
    dependencies and takes an empty constraints file silently; here the option's one purpose is
    its pins, so it is refused before anything is made (exit 2).

    Raises:
        InputError: always, naming the file, what it holds and how to generate it.
    """
    holds = "is empty" if not text.strip() else "holds only comments and blank lines"
    raise InputError(
        f"build-constraints file {path} {holds}: no pin, so every build requirement of the "
        "--allow-build sdists would be refused",
        fix=f"{_fix(path)}; or leave --build-constraints out for sdists that need no build "
        "requirements",
    )


def written(constraints: BuildConstraints, directory: Path) -> Path:
    """Write the checked pins into ``directory`` (mode 0600) for uv; the file's path."""
    copy = directory / "build-constraints.txt"
    fd = os.open(copy, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("".join(f"{pin}\n" for pin in constraints.pins))
    return copy
