"""What ``dlsetup create`` does: lock (unless given a lock), build, register a kernel, smoke-test.

The command only parses options and renders the :class:`Built` this returns.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dlsetup.envs.conda.install import create_environment, validate_env_name
from dlsetup.envs.conda.request import LockRequest, lock_target
from dlsetup.envs.finish import SmokeOutcome, activation_hint, run_smoke, skipped_smoke
from dlsetup.envs.jupyter import KernelSpec, has_ipykernel, register_kernel
from dlsetup.envs.location import default_envs_dir
from dlsetup.envs.progress import Progress
from dlsetup.envs.safety import check_prefix, normalize_prefix, target_lock
from dlsetup.envs.staging import InstallResult
from dlsetup.envs.venv.install import create_venv
from dlsetup.envs.venv.lock import (
    KEPT_LOCK,
    VenvLockRequest,
    is_venv_lock,
    lock_for_create,
    name_of_lock,
)
from dlsetup.errors import InputError


@dataclass(frozen=True)
class Built:
    """A new environment and how it was verified.

    Attributes:
        name: the environment's name (``--name``, the ``--prefix`` directory's, or the lock's).
        installed: what was installed where.
        from_lock: the lock it was built from when one was given (``--from-lock``), else ``None``.
        variant_reason: why the variant was chosen when it was locked here, else empty.
        kernel: the Jupyter kernel registered, or ``None``.
        smoke: the smoke test's outcome (``skipped`` with ``smoke=False``).
        activate: the command that activates it.
    """

    name: str
    installed: InstallResult
    from_lock: Path | None
    variant_reason: str
    kernel: KernelSpec | None
    smoke: SmokeOutcome
    activate: str


def build_environment(
    request: LockRequest | VenvLockRequest | None,
    *,
    from_lock: Path | None = None,
    prefix: Path | None = None,
    name: str | None = None,
    jupyter: bool = True,
    smoke: bool = True,
    force: bool = False,
    progress: Progress | None = None,
    on_smoke_start: Callable[[], None] | None = None,
    environment: str | None = None,
    dev: bool = True,
    extras: tuple[str, ...] = (),
) -> Built:
    """Build a verified environment from ``request`` (locked first) or from the lock ``from_lock``.

    Args:
        request: what to lock for this machine; ``None`` with ``from_lock``.
        from_lock: a conda-lock file to build from instead.
        prefix: the environment's directory (excludes ``name``).
        name: the environment's name, placed in :func:`default_envs_dir` (excludes ``prefix``).
        jupyter: register a Jupyter kernel when the environment has ipykernel.
        smoke: run ``dlsetup smoke`` inside the new environment.
        force: replace an existing environment (after the new one is complete); a non-empty
            directory that is not an environment is never replaced.
        progress: where the lock and install steps report; it is closed once the environment is
            installed (default: silent).
        on_smoke_start: called just before the smoke test starts.
        environment: the environment of a pixi.lock ``from_lock`` (default ``default``).
        dev: install a conda-lock ``from_lock``'s ``dev`` category (``conda-lock install``'s
            default; ``--no-dev`` drops it).
        extras: more categories of a conda-lock ``from_lock`` (``--extras``).

    The target's lock (:func:`dlsetup.envs.safety.target_lock`) is held from the install to the
    end of the smoke test, so a second ``create`` of the same target is refused meanwhile.

    Raises:
        InputError: not exactly one of ``request`` and ``from_lock``; both ``prefix`` and
            ``name``; an invalid name; an empty ``prefix``, a file or a path under a file.
        ExistsError: the target is a non-empty directory that is not an environment, or an
            environment and ``force`` is false (checked before locking, and again under the
            target's lock).
        IntegrityError, InstallError, SolveError: from locking and installing; InstallError
            too when another ``create`` is building the same target.
    """
    if (request is None) == (from_lock is None):
        raise InputError(
            "give either TARGET or --from-lock FILE (exactly one)",
            fix="for example: dlsetup create pytorch, or dlsetup create --from-lock x.conda-lock.yml",
        )
    if prefix is not None and name is not None:
        raise InputError("--prefix and --name exclude each other", fix="use one of them")
    if name is not None:
        validate_env_name(name)
    if prefix is not None:
        prefix = normalize_prefix(prefix)
        check_prefix(prefix, force=force)  # fail before a solve; checked again under the lock
    progress = progress or Progress(enabled=False)
    with tempfile.TemporaryDirectory(prefix="dlsetup-create-") as tmp:
        variant_reason = ""
        venv = isinstance(request, VenvLockRequest) or (
            from_lock is not None and is_venv_lock(from_lock)
        )
        if isinstance(request, VenvLockRequest):  # the venv backend: uv, pylock.toml
            progress.note(f"Locking {request.target} for this machine (venv, uv) ...")
            lock_path, variant_reason, default_name = lock_for_create(request, Path(tmp))
        elif request is not None:
            progress.note(f"Locking {request.target} for this machine ...")
            result, choice = lock_target(request, Path(tmp), force=True)
            lock_path = result.lock_path
            variant_reason = choice.reason
            default_name = result.name
        else:
            assert from_lock is not None
            lock_path = from_lock
            default_name = (
                name_of_lock(from_lock) if venv else _name_of_lock(from_lock, environment)
            )
        env_name = name or (prefix.name if prefix is not None else default_name)
        if prefix is None:
            validate_env_name(env_name)
            prefix = normalize_prefix(default_envs_dir() / env_name)
        lock_copy = lock_path.read_bytes() if lock_path.is_file() else b""

        def keep_lock(staged: Path) -> None:
            if venv:
                (staged / KEPT_LOCK).write_bytes(lock_copy)
                return
            meta = staged / "conda-meta"
            meta.mkdir(exist_ok=True)
            (meta / _kept_name(lock_copy)).write_bytes(lock_copy)

        with target_lock(prefix):
            try:
                installed = (
                    create_venv(
                        lock_path, prefix, force=force, progress=progress, on_ready=keep_lock
                    )
                    if venv
                    else create_environment(
                        lock_path,
                        prefix,
                        force=force,
                        progress=progress,
                        on_ready=keep_lock,
                        environment=environment,
                        dev=dev,
                        extras=extras,
                    )
                )
            finally:
                progress.close()
            kernel = None
            if jupyter and installed.python is not None and has_ipykernel(installed.prefix):
                kernel = register_kernel(installed.python, env_name, prefix=installed.prefix)
            outcome = (
                run_smoke(installed.python, installed.prefix, on_start=on_smoke_start)
                if smoke
                else skipped_smoke("--no-smoke")
            )
    return Built(
        name=env_name,
        installed=installed,
        from_lock=from_lock,
        variant_reason=variant_reason,
        kernel=kernel,
        smoke=outcome,
        activate=activation_hint(installed.prefix, env_name),
    )


def _name_of_lock(lock: Path, environment: str | None) -> str:
    """The default environment name for a lock: ``x`` for ``x.conda-lock.yml``; a pixi.lock's
    directory name (and the environment, when not ``default``); ``x`` for ``x.txt``/``x.lock``."""
    name = lock.name
    if name == "pixi.lock":
        base = lock.resolve().parent.name or "pixi"
        return base if environment in (None, "default") else f"{base}-{environment}"
    for suffix in (".yml", ".yaml", ".conda-lock", ".lock", ".txt"):
        name = name.removesuffix(suffix)
    return name


def _kept_name(lock: bytes) -> str:
    """The name the lock's copy has in ``conda-meta/`` (by its format, as detected on read)."""
    if b"@EXPLICIT" in lock:
        return "dlsetup.explicit.txt"
    if b"\nenvironments:" in lock or lock.startswith(b"environments:"):
        return "dlsetup.pixi.lock"
    return "dlsetup.conda-lock.yml"
