"""The conda backend behind :class:`dlsetup.envs.backend.Backend`: rattler (or conda-lock) locks,
conda-lock v1 / explicit / pixi.lock files, prefixes built by rattler's installer."""

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

#: the name of the lock's copy in ``conda-meta/``, by format
_KEPT_NAMES = {
    "explicit": "dlsetup.explicit.txt",
    "pixi": "dlsetup.pixi.lock",
    "conda-lock-v1": "dlsetup.conda-lock.yml",
}


class CondaBackend(Backend):
    name = "conda"
    formats = ("conda-lock-v1", "explicit", "pixi")

    def lock(self, request: Any, output: Path, *, force: bool) -> Locked:
        from dlsetup.envs.conda.request import lock_target

        result, choice = lock_target(request, output, force=force)
        return Locked(
            result.lock_path, choice.reason, result.name, (result, choice), result.channel_sources
        )

    def check(
        self, lock_path: Path, request: CheckRequest, probe: Callable[[], NvidiaFacts]
    ) -> CheckResult:
        from dlsetup.envs.conda.lock_check import check_conda_lock

        return check_conda_lock(lock_path, request, probe)

    def read(self, lock_path: Path, platform: str, options: BuildOptions) -> LockedEnvironment:
        from dlsetup.envs.lockfiles.formats import read_locked_environment

        return read_locked_environment(
            lock_path,
            platform,
            environment=options.environment,
            dev=options.dev,
            extras=options.extras,
        )

    def default_name(self, lock_path: Path, options: BuildOptions) -> str:
        """``x`` for ``x.conda-lock.yml``, ``x.txt`` or ``x.lock``; a pixi.lock's directory name
        (and the environment, when not ``default``)."""
        name = lock_path.name
        if name == "pixi.lock":
            base = lock_path.resolve().parent.name or "pixi"
            env = options.environment
            return base if env in (None, "default") else f"{base}-{env}"
        for suffix in (".yml", ".yaml", ".conda-lock", ".lock", ".txt"):
            name = name.removesuffix(suffix)
        return name

    def keep_lock(self, staged: Path, lock: bytes, lock_format: str) -> None:
        meta = staged / "conda-meta"
        meta.mkdir(exist_ok=True)
        (meta / _KEPT_NAMES.get(lock_format, "dlsetup.conda-lock.yml")).write_bytes(lock)

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
        from dlsetup.envs.conda.install import create_environment

        return create_environment(
            lock_path,
            prefix,
            force=force,
            progress=progress,
            on_ready=on_ready,
            environment=options.environment,
            dev=options.dev,
            extras=options.extras,
            options=options,
        )
