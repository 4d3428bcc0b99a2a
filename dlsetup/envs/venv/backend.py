"""The venv backend behind :class:`dlsetup.envs.backend.Backend`: uv resolves PEP 751 pylock.toml
files from PyPI and PyTorch's wheel index; a venv is built from one with ``uv venv`` and
``uv pip sync`` (hashes required, nothing built)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlsetup.envs.backend import Backend, BuildOptions, Locked

if TYPE_CHECKING:
    from dlsetup.envs.lockfiles.formats import LockedEnvironment
    from dlsetup.envs.progress import Progress
    from dlsetup.envs.staging import InstallResult
    from dlsetup.envs.staleness import CheckRequest, CheckResult
    from dlsetup.probes.nvidia import NvidiaFacts

#: where a venv keeps the lock it was built from
KEPT_LOCK = Path("pylock.dlsetup.toml")


class VenvBackend(Backend):
    name = "venv"
    formats = ("pylock",)

    def lock(self, request: Any, output: Path, *, force: bool) -> Locked:
        from dlsetup.envs.venv.lock import lock_venv, plan_notes, variant_reason

        result = lock_venv(request, output, force=force)
        reason = variant_reason(result)
        said = (*result.sources, *plan_notes(result))  # create prints them before it builds
        return Locked(result.lock_path, reason, result.name, result, said)

    def check(
        self, lock_path: Path, request: CheckRequest, probe: Callable[[], NvidiaFacts]
    ) -> CheckResult:
        from dlsetup.envs.venv.lock_check import check_venv_lock

        return check_venv_lock(lock_path, request, probe)

    def read(self, lock_path: Path, platform: str, options: BuildOptions) -> LockedEnvironment:
        """The wheels ``platform`` installs, for the Python the venv is built with (a lock's
        ``[tool.dlsetup] python`` is an ``X.Y``, never a path): no sdist, ever."""
        from dlsetup.envs.lockfiles.formats import check_options
        from dlsetup.envs.venv.install import python_request
        from dlsetup.envs.venv.pylock import parse_pylock
        from dlsetup.envs.venv.read import locked_environment

        check_options(
            lock_path,
            "pylock",
            environment=options.environment,
            dev=options.dev,
            extras=options.extras,
        )
        lock = parse_pylock(lock_path, named=True, allow_build=options.allow_build)
        return locked_environment(lock, platform, python_request(lock), options.allow_build)

    def default_name(self, lock_path: Path, options: BuildOptions) -> str:
        """The lock's ``[tool.dlsetup] name``, else the NAME of ``pylock.NAME.toml``
        (:func:`dlsetup.envs.venv.plan.name_of_lock`), read with the ``--allow-build`` names."""
        from dlsetup.envs.venv.plan import name_of_lock

        return name_of_lock(lock_path, options.allow_build)

    def keep_lock(self, staged: Path, lock: bytes, lock_format: str) -> None:
        (staged / KEPT_LOCK).write_bytes(lock)

    def build(
        self,
        lock_path: Path,
        prefix: Path,
        *,
        force: bool,
        progress: Progress,
        on_ready: Callable[[Path], None],
        options: BuildOptions,
    ) -> InstallResult:
        from dlsetup.envs.venv.install import create_venv

        return create_venv(
            lock_path,
            prefix,
            force=force,
            progress=progress,
            on_ready=on_ready,
            options=options,
        )
