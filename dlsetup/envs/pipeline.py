"""The one environment pipeline: which backend serves a request or a lock, and the stages around it.

Commands call this module (and :mod:`dlsetup.envs.build`), never a backend: a backend is chosen by
name (``--backend``) or by a lock's *content* (:func:`lock_format`), never by its file name. What
every backend gets here, written once: errors with credentials redacted, the lock read through one
bounded reader into one typed model (:func:`read_lock`), the ``lock --check`` verdict timed the
same way.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlsetup.errors import DlsetupError, InputError

if TYPE_CHECKING:
    from dlsetup.envs.backend import Backend, BuildOptions, Locked
    from dlsetup.envs.lockfiles.formats import LockedEnvironment
    from dlsetup.envs.staleness import CheckRequest, CheckResult
    from dlsetup.probes.nvidia import NvidiaFacts

#: the ``--backend`` choices
BACKENDS = ("conda", "venv")
_PYLOCK_RE = re.compile(r"^lock-version[ \t]*=", re.MULTILINE)


def backend_named(name: str) -> Backend:
    """The backend ``--backend NAME`` selects.

    Raises:
        InputError: no such backend.
    """
    if name == "conda":
        from dlsetup.envs.conda.backend import CondaBackend

        return CondaBackend()
    if name == "venv":
        from dlsetup.envs.venv.backend import VenvBackend

        return VenvBackend()
    raise InputError(f"no backend {name!r}", fix=f"--backend is one of {', '.join(BACKENDS)}")


def lock_format(path: Path) -> str:
    """The format of the lock at ``path``, from its content: ``pylock`` (PEP 751),
    ``conda-lock-v1``, ``explicit`` or ``pixi``.

    Raises:
        InputError: not a regular readable file, or not a lock dlsetup reads (the message names
            what it looks like and the supported formats).
    """
    from dlsetup.envs.lockfiles.formats import detect_format, read_lock_text

    text = read_lock_text(path)
    if _is_pylock(text) or (path.suffix == ".toml" and _not_yaml_or_explicit(text)):
        return "pylock"  # a broken *.toml is judged by the PEP 751 reader, which names its fault
    return detect_format(path, text)[0]


def _not_yaml_or_explicit(text: str) -> bool:
    """Whether ``text`` is neither an explicit lock nor a YAML mapping (the conda formats)."""
    if "@EXPLICIT" in text:
        return False
    from dlsetup.reading import parse_yaml

    try:
        data = parse_yaml(text, source="lock", what="lock file")
    except InputError:
        return True
    return not isinstance(data, dict)


def _is_pylock(text: str) -> bool:
    """Whether ``text`` has PEP 751's top-level ``lock-version = ...`` key (TOML; the venv
    backend's reader then validates the whole file)."""
    return "lock-version" in text and _PYLOCK_RE.search(text) is not None  # ``in``: fast


def backend_for_lock(path: Path) -> tuple[Backend, str]:
    """The backend that builds and checks the lock at ``path``, and the lock's format."""
    fmt = lock_format(path)
    for name in BACKENDS:
        backend = backend_named(name)
        if fmt in backend.formats:
            return backend, fmt
    raise InputError(
        f"{path}: no backend builds {fmt} locks", fix="lock it again with dlsetup lock"
    )


def read_lock(path: Path, platform: str, options: BuildOptions | None = None) -> LockedEnvironment:
    """What ``platform`` installs from the lock at ``path``, whatever its format: the format is
    detected from the content (:func:`lock_format`) and its backend reads it into the one typed
    model, :class:`dlsetup.envs.lockfiles.formats.LockedEnvironment`.

    Args:
        path: any lock dlsetup reads (conda-lock v1, explicit, pixi.lock, PEP 751 pylock.toml).
        platform: a conda platform name (``linux-64``, ``osx-arm64``, ``win-64`` ...).
        options: the part of the lock to read (``--environment``, ``--no-dev``, ``--extras``).

    Raises:
        InputError: not a lock dlsetup reads, or options or a platform it does not have (exit 2;
            credentials masked in the message).
        IntegrityError: a package the lock would have built or run (exit 4).
    """
    from dlsetup.envs.backend import BuildOptions

    chosen = options or BuildOptions()

    def run() -> LockedEnvironment:
        backend, _ = backend_for_lock(path)
        return backend.read(path, platform, chosen)

    locked: LockedEnvironment = _redacted(run)
    return locked


def lock(backend: str, request: Any, output: Path, *, force: bool) -> Locked:
    """Lock ``request`` with the backend named ``backend`` into ``output``."""
    locked: Locked = _redacted(lambda: backend_named(backend).lock(request, output, force=force))
    return locked


def conda_request(**options: Any) -> Any:
    """The conda backend's lock request (:class:`dlsetup.envs.conda.request.LockRequest`)."""
    from dlsetup.envs.conda.request import LockRequest

    return LockRequest(**options)


def venv_request(**options: Any) -> Any:
    """The venv backend's lock request (:class:`dlsetup.envs.venv.lock.VenvLockRequest`)."""
    from dlsetup.envs.venv.lock import VenvLockRequest

    return VenvLockRequest(**options)


def venv_variant_reason(result: Any) -> str:
    """Why a venv lock's variant and release were chosen, in one line."""
    from dlsetup.envs.venv.lock import variant_reason

    return variant_reason(result)


def _probe() -> NvidiaFacts:
    from dlsetup.probes.nvidia import probe_nvidia

    return probe_nvidia()


def check_lock(
    lock_path: Path,
    request: CheckRequest | None = None,
    *,
    probe: Callable[[], NvidiaFacts] = _probe,
    backend: str | None = None,
) -> CheckResult:
    """``dlsetup lock --check``: compare ``lock_path`` with what its backend would lock now.

    Args:
        lock_path: a lock written by ``dlsetup lock`` (any backend; told apart by content).
        request: options given now (None: reuse everything the lock records).
        probe: this machine's NVIDIA facts; called only where the lock's CUDA version or GPUs came
            from the driver and no ``--cuda``/``--gpu-arch`` is given.
        backend: the backend the user named (``--backend``), or None for any; a lock of another
            backend is then an InputError.

    Raises:
        InputError: a malformed or foreign lock, a missing environment file beside it, a lock of
            another backend than ``backend``, or a bad option value (exit 2).
    """
    from dlsetup.envs.staleness import CheckRequest, CheckResult

    start = time.perf_counter()

    def run() -> CheckResult:
        chosen, fmt = backend_for_lock(lock_path)
        if backend is not None and chosen.name != backend:
            raise InputError(
                f"{lock_path} is a {fmt} lock (the {chosen.name} backend's), not a "
                f"--backend {backend} lock",
                fix=f"drop --backend {backend}, or name a {backend} lock",
            )
        return chosen.check(lock_path, request or CheckRequest(), probe)

    result = _redacted(run)
    return CheckResult(**{**result.__dict__, "seconds": time.perf_counter() - start})


def _redacted(step: Callable[[], Any]) -> Any:
    """Run ``step``; a DlsetupError leaves with credentials masked in its message and fix."""
    try:
        return step()
    except DlsetupError as exc:
        from dlsetup.envs.credentials import redact_error

        redact_error(exc)
        raise


def virtual_package_sources(packages: Any) -> str:
    """Where a conda lock's virtual-package values came from, in one line."""
    from dlsetup.envs.conda.virtual_packages import sources_text

    return sources_text(packages)
