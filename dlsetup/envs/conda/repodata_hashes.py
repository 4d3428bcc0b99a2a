"""Hashes for an explicit lock's unhashed lines, from each package's channel repodata.json.

``conda list --explicit`` writes one archive URL a line with **no hash** unless ``--md5`` (or
``--sha256``) is given, and that is the explicit file most users have. Such a line is verifiable
all the same: its URL names the channel and subdir, and the channel's ``repodata.json`` records
the archive's sha256 (and md5). This module looks each unhashed package up there, through
rattler's :class:`rattler.Gateway` (the same library, HTTP client, credential handling and
on-disk repodata cache the solve uses; ``${VAR}`` placeholders filled in by
:func:`dlsetup.envs.credentials.expand_auth` only for the query, and a private channel's
repodata cached only for the call, :func:`repodata_cache`), and gives the record the
channel's sha256 and md5. The archive is then fetched and checked against them like any locked
hash (:func:`dlsetup.envs.conda.install.fetch_verified`).

A package the channel's repodata does not list (a removed build, another channel, a local file)
fails naming the line and the fix: write the file with hashes (``conda list --explicit --md5``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlsetup.envs.credentials import (
    canonical,
    expand_auth,
    has_literal_auth,
    placeholders,
    redact,
)
from dlsetup.errors import InputError, IntegrityError

if TYPE_CHECKING:
    from dlsetup.envs.conda.install import LockContents

FIX = (
    "write the explicit file with hashes: conda list --explicit --md5 (or --sha256), or "
    "conda-lock render -k explicit"
)


def unhashed(records: Sequence[Any]) -> list[Any]:
    """The records that carry neither a sha256 nor an md5."""
    return [r for r in records if r.sha256 is None and r.md5 is None]


def _line_of(lock: Path, url: str) -> str:
    """``line N`` of ``lock`` that holds ``url`` (for messages), or ``a line``."""
    from dlsetup.envs.lockfiles.formats import read_lock_text

    try:  # the lock was read once already: this second read is bounded the same way
        for lineno, line in enumerate(read_lock_text(lock).splitlines(), 1):
            if line.strip().split("#", 1)[0].strip() == url:
                return f"line {lineno}"
    except InputError:
        pass
    return "a line"


def _channel_and_subdir(rec: Any) -> tuple[str, str]:
    """The channel base URL (no trailing ``/``) and subdir that the record's URL names."""
    base, subdir, _ = str(rec.url).rsplit("/", 2)
    return base, subdir


@contextlib.contextmanager
def repodata_cache(channels: Iterable[str], cache_dir: Path | None) -> Iterator[Path | None]:
    """The rattler repodata cache to use for ``channels``: ``cache_dir`` (``None``: rattler's
    own), or, when a channel URL carries credentials (``${VAR}`` placeholders, or values
    already filled in), a private folder removed afterwards: rattler's cache writes the URL it
    fetched, credentials included, into its ``.info.json`` and shard-cache files."""
    if not any(placeholders(c) or has_literal_auth(c) for c in channels):
        yield cache_dir
        return
    with tempfile.TemporaryDirectory(prefix="dlsetup-repodata-") as tmp:
        yield Path(tmp)


async def _query(
    groups: dict[tuple[str, str], list[Any]], cache_dir: Path | None, lock: Path
) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(channel, subdir): {file name: repodata record}}`` for the names asked."""
    import rattler

    found: dict[tuple[str, str], dict[str, Any]] = {}
    for (channel, subdir), records in groups.items():
        names = sorted({str(r.name.normalized) for r in records})
        try:
            with repodata_cache([channel], cache_dir) as cache:
                gateway = rattler.Gateway(cache_dir=cache) if cache else rattler.Gateway()
                result = await gateway.query(
                    [rattler.Channel(expand_auth(channel))],
                    [subdir],  # type: ignore[list-item]
                    names,
                    recursive=False,
                )
        except Exception as exc:  # no repodata.json there, unreachable, unreadable
            rec = records[0]
            raise IntegrityError(
                f"{_line_of_record(rec, lock)} names {rec.file_name} without a hash, and its "
                f"channel's repodata ({redact(channel)}/{subdir}/repodata.json) cannot be "
                f"read to verify it: {redact(str(exc))}",
                fix=FIX,
            ) from exc
        found[(channel, subdir)] = {
            str(r.file_name): r for per_channel in result for r in per_channel
        }
    return found


def _line_of_record(rec: Any, lock: Path) -> str:
    return f"{_line_of(lock, str(rec.url))} of {lock}"


async def hashes_from_repodata(contents: LockContents, cache_dir: Path | None) -> LockContents:
    """``contents`` with every unhashed record given its channel's sha256 and md5.

    Args:
        contents: an explicit lock's contents (records from the lines, URL and maybe a hash).
        cache_dir: rattler's repodata cache (default: rattler's own).

    Returns:
        the same contents; records without a hash replaced by copies that carry the
        repodata's sha256 and md5, their URLs listed in ``hashes_from`` (for messages).

    Raises:
        IntegrityError: the channel's repodata cannot be read, or does not list the package
            (exit 4), naming the line and the fix.
    """
    missing = unhashed(contents.records)
    if not missing:
        return contents
    import rattler

    groups: dict[tuple[str, str], list[Any]] = {}
    for rec in missing:
        groups.setdefault(_channel_and_subdir(rec), []).append(rec)
    lock = contents.path
    found = await _query(groups, cache_dir, lock)
    replaced: dict[str, Any] = {}
    for rec in missing:
        key = _channel_and_subdir(rec)
        listed = found[key].get(str(rec.file_name))
        if listed is None or (listed.sha256 is None and listed.md5 is None):
            raise IntegrityError(
                f"{_line_of_record(rec, lock)} names {rec.file_name} without a hash, and its "
                f"channel's repodata ({redact(key[0])}/{key[1]}/repodata.json) does not list it, "
                "so it cannot be verified; refused",
                fix=FIX,
            )
        record = rattler.PackageRecord(
            name=str(rec.name.normalized),
            version=str(rec.version),
            build=rattler.BuildString(str(rec.build)),
            build_number=0,
            subdir=str(rec.subdir),
            sha256=listed.sha256,
            md5=listed.md5,
        )
        replaced[str(rec.url)] = rattler.RepoDataRecord(
            record, str(rec.file_name), str(rec.url), str(rec.channel)
        )
    records = [replaced.get(str(r.url), r) for r in contents.records]
    return dataclasses.replace(
        contents,
        records=records,
        hashes_from=frozenset(canonical(url) for url in replaced),
    )


__all__ = ["FIX", "hashes_from_repodata", "repodata_cache", "unhashed"]
