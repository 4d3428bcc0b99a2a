"""``dlsetup lock --check`` of a lock that conda-lock made itself: its inputs compared the way
``conda-lock lock --check-input-hash`` compares them.

Such a lock records no request (no ``dlsetup_*`` metadata), only what conda-lock needs to tell
whether its inputs changed: per platform a content hash of the environment file(s) it lists in
``sources:`` (relative to the lock), the channels and the virtual packages it solved with. So the
check is conda-lock's own: the same parser (``make_lock_spec``), the same hash, every legacy form of
it conda-lock still accepts (``backwards_compatible_content_hashes``), and the virtual packages
conda-lock would take when run beside the lock (a ``virtual-packages.yml`` there, else its
defaults, with or without CUDA). Nothing is solved and nothing is written.

The environment file is the one ``sources:`` names, or the one given as TARGET; a lock whose source
is not there is refused with the path and the fix. A stale lock is made again with conda-lock (the
command is printed) or with ``dlsetup lock``.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from dlsetup.envs.staleness import CheckRequest, CheckResult, Difference
from dlsetup.errors import InputError

#: what conda-lock reads from the working directory when no --virtual-package-spec is given
_VIRTUAL_PACKAGE_FILES = ("virtual-packages.yml", "virtual-packages.yaml")


def check_input_hash(
    lock_path: Path,
    req: CheckRequest,
    *,
    sources: tuple[str, ...],
    platforms: tuple[str, ...],
    content_hash: dict[str, str],
) -> CheckResult:
    """Compare a conda-lock-made lock with its environment file as conda-lock does.

    Args:
        lock_path: the lock.
        req: the options given now (a TARGET path names the environment file; ``--platform``
            and ``--channel`` are taken as conda-lock takes ``-p`` and ``-c``).
        sources: the lock's ``sources:`` (relative to the lock's directory).
        platforms: the lock's platforms.
        content_hash: the lock's content hash per platform.

    Raises:
        InputError: an option that only a dlsetup lock records, or a source file not there.
    """
    _refuse_options(lock_path, req)
    files = _source_files(lock_path, req, sources)
    asked = req.platforms or platforms
    differences: list[Difference] = []
    if set(asked) != set(platforms):
        differences.append(
            Difference(
                "platforms",
                None,
                f"locked for {', '.join(platforms)}, asked for {', '.join(asked)}",
            )
        )
    per_repo, expected = _input_hashes(lock_path, files, asked, req.channels)
    compared = [p for p in asked if p in platforms]
    matching = [
        label
        for label, accepted in per_repo
        if all(content_hash.get(p) in accepted[p] for p in compared)
    ]
    used = matching[0] if matching else " or ".join(label for label, _ in per_repo)
    shown = ", ".join(str(f) for f in files)
    if not matching:
        stale = [
            p for p in compared if not any(content_hash.get(p) in a[p] for _, a in per_repo)
        ] or compared
        differences.append(
            Difference(
                "content_hash",
                None if len(stale) == len(asked) else stale[0],
                f"conda-lock's input hash of {', '.join(stale)} does not match {shown} now "
                f"(the environment file, its channels or the virtual packages changed since "
                f"conda-lock made the lock; virtual packages: {used})",
            )
        )
    return CheckResult(
        lock=lock_path,
        environment_file=files[0],
        source=shown,
        target="file",
        variant=None,
        cuda=None,
        platforms=asked,
        current=not differences,
        differences=tuple(differences),
        notes=(
            "made by conda-lock (no dlsetup metadata): its inputs were compared as conda-lock "
            f"--check-input-hash compares them (virtual packages: {used})",
        ),
        content_hash={
            p: {"recorded": content_hash.get(p), "expected": expected.get(p)} for p in asked
        },
        hash_engine="conda-lock",
        relock_command=_relock(lock_path, files, asked, req.channels),
    )


def _refuse_options(lock_path: Path, req: CheckRequest) -> None:
    """Options that only a lock dlsetup made records (exit 2)."""
    given = [
        ("--variant", req.variant),
        ("--cuda", req.cuda),
        ("--gpu-arch", ",".join(req.gpu_arch) or None),
        ("--python-version", req.python_version),
        ("--all-platforms", "yes" if req.all_platforms else None),
        ("--torch-version", req.torch_version),
        ("--torch-index-url", req.torch_index_url),
        ("--index-url", req.index_url),
    ]
    for option, value in given:
        if value is not None:
            raise InputError(
                f"{option} does not apply to {lock_path}: conda-lock made it, and such a lock "
                "records only the input hash of its environment file",
                fix=f"drop {option} (name the environment file as TARGET, and --platform or "
                "--channel as you gave conda-lock -p and -c)",
            )


def _source_files(lock_path: Path, req: CheckRequest, sources: tuple[str, ...]) -> list[Path]:
    """The environment file(s) the lock was made from: TARGET when given, else ``sources:``."""
    from dlsetup.envs.files.spec import TARGETS

    if req.target is not None and req.target not in TARGETS:
        files = [Path(req.target)]
    else:
        files = [lock_path.parent / s for s in sources]
    missing = [f for f in files if not f.is_file()]
    if not files or missing:
        what = ", ".join(sources) or "no file (its sources: list is empty)"
        where = f"; {missing[0]} is not there" if missing else ""
        raise InputError(
            f"{lock_path} was made by conda-lock from {what}{where}",
            fix=f"name the environment file: dlsetup lock ENVIRONMENT.yml --check {lock_path}",
        )
    return files


def _virtual_package_repos(lock_path: Path) -> list[tuple[str, Any]]:
    """The virtual packages conda-lock would take beside the lock: its ``virtual-packages.yml``
    there, else conda-lock's defaults with CUDA and without (``--without-cuda``)."""
    from conda_lock.virtual_package import (
        default_virtual_package_repodata,
        virtual_package_repo_from_specification,
    )

    for name in _VIRTUAL_PACKAGE_FILES:
        spec = lock_path.parent / name
        if spec.is_file():
            return [(f"{spec}", virtual_package_repo_from_specification(spec))]
    return [
        ("conda-lock's defaults", default_virtual_package_repodata()),
        ("conda-lock's defaults without CUDA", default_virtual_package_repodata(cuda_version="")),
    ]


def _input_hashes(
    lock_path: Path, files: list[Path], platforms: tuple[str, ...], channels: tuple[str, ...]
) -> tuple[list[tuple[str, dict[str, set[str]]]], dict[str, str]]:
    """Per set of virtual packages conda-lock could have taken, and per platform, every hash it
    accepts for these inputs; and the hash it would write now (with the first set)."""
    import logging

    from conda_lock.content_hash import backwards_compatible_content_hashes, compute_content_hashes
    from conda_lock.src_parser import make_lock_spec

    from dlsetup.envs.conda.lock import pypi_mapping_path

    logging.getLogger("conda_lock").setLevel(logging.ERROR)
    try:
        spec = make_lock_spec(
            src_files=files,
            channel_overrides=list(channels) or None,
            platform_overrides=list(platforms),
            mapping_url=str(pypi_mapping_path()),
        )
    except Exception as exc:  # conda-lock's parser: YAML, pydantic and its own errors
        raise InputError(
            f"conda-lock cannot read {', '.join(str(f) for f in files)}: {exc}",
            fix="fix the environment file so conda-lock reads it (conda-lock lock --file ...)",
        ) from exc
    per_repo: list[tuple[str, dict[str, set[str]]]] = []
    expected: dict[str, str] = {}
    for label, repo in _virtual_package_repos(lock_path):
        with repo:
            if not expected:
                expected = {str(k): str(v) for k, v in compute_content_hashes(spec, repo).items()}
            per_repo.append(
                (label, {p: backwards_compatible_content_hashes(spec, repo, p) for p in platforms})
            )
    return per_repo, expected


def _relock(
    lock_path: Path, files: list[Path], platforms: tuple[str, ...], channels: tuple[str, ...]
) -> str:
    """The conda-lock command that makes the lock again from the same inputs."""
    parts = ["conda-lock", "lock"]
    for f in files:
        parts += ["--file", str(f)]
    for platform in platforms:
        parts += ["--platform", platform]
    for channel in channels:
        parts += ["--channel", channel]
    parts += ["--lockfile", str(lock_path)]
    return " ".join(shlex.quote(p) for p in parts)
