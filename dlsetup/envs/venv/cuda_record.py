"""The companion CUDA check as a lock records it, in ``[tool.dlsetup]``, and reads it back.

``dlsetup lock --backend venv`` reads each companion's ``NAME/version.py`` from its wheel
(:mod:`~dlsetup.envs.venv.companion_cuda`); what it found is written into the lock's
``[tool.dlsetup]`` table so that what uses the lock later (``create --from-lock``) repeats it
without reading a wheel or asking an index again:

* ``cuda_checked``: each companion built for torch's CUDA (``platform``, ``name``, ``version``,
  ``declared``, ``torch``, ``torch_variant``);
* ``cuda_warnings``: each companion built for another CUDA minor version of torch's major, with
  the same keys, the matching build found (``matching``: ``version`` and ``declared``; absent
  when none was) and the words ``lock`` printed (``message``, ``fix``).

Read back, every entry is checked as the table's other fields are (:func:`recorded_cuda`): a
value of the wrong type, a version that is not one, a build that contradicts the entry's kind (a
warning whose builds agree, a "checked" pair whose builds differ), a platform the lock does not
hold or text with control characters is refused, naming the file, the entry and the value. A
lock written before these keys existed has none, and reads as having recorded nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlsetup.envs.venv.companion_cuda import CompanionCuda, CudaMatch, CudaMinorMismatch
from dlsetup.errors import InputError

if TYPE_CHECKING:
    from dlsetup.envs.venv.pylock import PyLock

#: the ``[tool.dlsetup]`` keys
CHECKED_KEY = "cuda_checked"
WARNINGS_KEY = "cuda_warnings"
#: the longest message or fix read back (lock writes about 600 characters)
MAX_TEXT = 4000
#: a CUDA build as a local version names it
_CUDA_BUILD = re.compile(r"cu[0-9]{2,4}")
#: a project name (PEP 508)
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FIX = "lock again with dlsetup lock --backend venv (or remove the entry from [tool.dlsetup])"


@dataclass(frozen=True)
class RecordedCuda:
    """What a lock recorded of its companions' CUDA builds.

    Attributes:
        checked: each companion found built for torch's CUDA.
        warnings: each companion built for another CUDA minor version of torch's major.
    """

    checked: tuple[CudaMatch, ...] = ()
    warnings: tuple[CudaMinorMismatch, ...] = ()

    def warnings_on(self, platform: str) -> tuple[CudaMinorMismatch, ...]:
        """The warnings of one platform (``linux-64``)."""
        return tuple(w for w in self.warnings if w.platform == platform)


def _base(platform: str, found: CompanionCuda, torch: str, variant: str) -> dict[str, Any]:
    return {
        "platform": platform,
        "name": found.name,
        "version": found.version,
        "declared": found.declared,
        "torch": torch,
        "torch_variant": variant,
    }


def cuda_tables(
    checked: Sequence[CudaMatch], warnings: Sequence[CudaMinorMismatch]
) -> dict[str, list[dict[str, Any]]]:
    """The ``[tool.dlsetup]`` keys :func:`recorded_cuda` reads back (TOML has no null: a
    warning without a matching build has no ``matching`` key)."""
    warned = []
    for w in warnings:
        entry = _base(w.platform, w.companion, w.torch_version, w.torch_variant)
        if w.match is not None:
            entry["matching"] = {"version": w.match.version, "declared": w.match.declared}
        warned.append({**entry, "message": w.message, "fix": w.fix})
    return {
        CHECKED_KEY: [
            _base(m.platform, m.companion, m.torch_version, m.torch_variant) for m in checked
        ],
        WARNINGS_KEY: warned,
    }


class _Entry:
    """One recorded entry being read; every refusal names the file, the entry and the value."""

    def __init__(self, lock: PyLock, key: str, index: int, entry: Any) -> None:
        self.lock, self.where = lock, f"[tool.dlsetup] {key}[{index}]"
        if not isinstance(entry, dict):
            raise self.bad(f"is {_shown(entry)}, not a table")
        self.entry: Mapping[str, Any] = entry

    def bad(self, what: str) -> InputError:
        return InputError(f"{self.lock.path}: {self.where} {what}", fix=_FIX)

    def text(self, key: str, table: Mapping[str, Any] | None = None) -> str:
        value = (self.entry if table is None else table).get(key)
        if not isinstance(value, str) or not value:
            raise self.bad(f"has {key} = {_shown(value)}, not a non-empty string")
        if len(value) > MAX_TEXT or _CONTROL.search(value):
            raise self.bad(
                f"has {key} = {_shown(value)}: longer than {MAX_TEXT} characters or holding "
                "control characters"
            )
        return value

    def version(self, key: str, table: Mapping[str, Any] | None = None) -> str:
        from packaging.version import InvalidVersion, Version

        value = self.text(key, table)
        try:
            Version(value)
        except InvalidVersion:
            raise self.bad(f"has {key} = {_shown(value)}, not a version") from None
        return value

    def companion(self, table: Mapping[str, Any] | None = None) -> CompanionCuda:
        """The companion (or its matching build, ``table``): its declared version is its
        version with a CUDA build (``2.11.1`` and ``2.11.1+cu132``)."""
        from packaging.version import Version

        name = self.text("name")
        if not _NAME.fullmatch(name):
            raise self.bad(f"has name = {_shown(name)}, not a project name")
        version, declared = self.version("version", table), self.version("declared", table)
        found = CompanionCuda(name, version, declared)
        if Version(declared).public != Version(version).public or not _CUDA_BUILD.fullmatch(
            found.build
        ):
            raise self.bad(
                f"has declared = {_shown(declared)}, not version {version} with a CUDA build "
                "(+cuXYZ)"
            )
        return found

    def torch(self) -> tuple[str, str]:
        """``(torch's version, its CUDA build)``."""
        torch, variant = self.version("torch"), self.text("torch_variant")
        if not _CUDA_BUILD.fullmatch(variant):
            raise self.bad(f"has torch_variant = {_shown(variant)}, not a CUDA build (cuXYZ)")
        return torch, variant

    def platform(self, platforms: Sequence[str]) -> str:
        platform = self.text("platform")
        if platform not in platforms:
            raise self.bad(
                f"has platform = {_shown(platform)}, which the lock's platforms "
                f"({', '.join(platforms) or 'none'}) do not hold"
            )
        return platform


def _shown(value: Any) -> str:
    """A value as a message shows it: repr, at most 200 characters."""
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:200]}..."


def _checked(read: _Entry, platforms: Sequence[str]) -> CudaMatch:
    found, (torch, variant) = read.companion(), read.torch()
    if found.build != variant:
        raise read.bad(
            f"has declared = {_shown(found.declared)} beside torch_variant = {_shown(variant)}: "
            f"it records {found.name} as built for torch's CUDA, but the builds differ"
        )
    return CudaMatch(read.platform(platforms), found, torch, variant)


def _warning(read: _Entry, platforms: Sequence[str]) -> CudaMinorMismatch:
    from dlsetup.envs.venv.companion_cuda import same_major

    found, (torch, variant) = read.companion(), read.torch()
    if found.build == variant or not same_major(found.build, variant):
        raise read.bad(
            f"has declared = {_shown(found.declared)} beside torch_variant = {_shown(variant)}: "
            f"it warns of {found.name}, and a warning is for another CUDA minor version of "
            "torch's major"
        )
    match = None
    matching = read.entry.get("matching")
    if matching is not None:
        if not isinstance(matching, dict):
            raise read.bad(f"has matching = {_shown(matching)}, not a table")
        match = read.companion(matching)
        if match.build != variant:
            raise read.bad(
                f"has matching.declared = {_shown(match.declared)}, not a {variant} build"
            )
    platform = read.platform(platforms)
    return CudaMinorMismatch(
        platform, found, torch, variant, match, read.text("message"), read.text("fix")
    )


def _entries(lock: PyLock, key: str) -> list[Any]:
    value = lock.tool.get(key, [])
    if not isinstance(value, list):
        raise InputError(
            f"{lock.path}: [tool.dlsetup] {key} = {_shown(value)} is not an array of tables",
            fix=_FIX,
        )
    return value


def recorded_cuda(lock: PyLock) -> RecordedCuda:
    """What ``lock``'s ``[tool.dlsetup]`` table records of its companions' CUDA builds (nothing
    for a lock written before it recorded them, or by another tool).

    Raises:
        InputError: an entry that is not one dlsetup writes (named, with its value).
    """
    platforms = lock.tool.get("platforms", [])
    names = [str(p) for p in platforms] if isinstance(platforms, list) else []
    checked = tuple(
        _checked(_Entry(lock, CHECKED_KEY, i, e), names)
        for i, e in enumerate(_entries(lock, CHECKED_KEY))
    )
    warnings = tuple(
        _warning(_Entry(lock, WARNINGS_KEY, i, e), names)
        for i, e in enumerate(_entries(lock, WARNINGS_KEY))
    )
    return RecordedCuda(checked, warnings)
