"""What ``dlsetup create`` does: lock (unless given a lock), build, register a kernel, smoke-test.

The command only parses options and renders the :class:`Built` this returns.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlsetup.envs.backend import BuildOptions
from dlsetup.envs.files.names import validate_env_name
from dlsetup.envs.finish import SmokeOutcome, activation_hint, run_smoke, skipped_smoke
from dlsetup.envs.jupyter import KernelSpec, has_ipykernel, register_kernel
from dlsetup.envs.location import default_envs_dir
from dlsetup.envs.lockfiles.formats import check_options, read_lock_text
from dlsetup.envs.pipeline import backend_for_lock, backend_named
from dlsetup.envs.progress import Progress
from dlsetup.envs.safety import check_prefix, normalize_prefix, target_lock
from dlsetup.envs.staging import InstallResult
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
    request: Any,
    *,
    backend: str = "conda",
    from_lock: Path | None = None,
    prefix: Path | None = None,
    name: str | None = None,
    jupyter: bool = True,
    smoke: bool = True,
    force: bool = False,
    progress: Progress | None = None,
    on_smoke_start: Callable[[], None] | None = None,
    options: BuildOptions | None = None,
) -> Built:
    """Build a verified environment from ``request`` (locked first) or from the lock ``from_lock``.

    Args:
        request: what to lock for this machine (the request type of ``backend``); ``None`` with
            ``from_lock``.
        backend: the backend that locks ``request`` (``--backend``); a ``from_lock``'s backend
            is its format's (:func:`dlsetup.envs.pipeline.backend_for_lock`), and a lock of
            another backend than a ``backend`` given as ``venv`` is refused.
        from_lock: a lock file (any format dlsetup reads) to build from instead.
        prefix: the environment's directory (excludes ``name``).
        name: the environment's name, placed in :func:`default_envs_dir` (excludes ``prefix``).
        jupyter: register a Jupyter kernel when the environment has ipykernel.
        smoke: run ``dlsetup smoke`` inside the new environment.
        force: replace an existing environment (after the new one is complete); a non-empty
            directory that is not an environment is never replaced.
        progress: where the lock and install steps report; it is closed once the environment is
            installed (default: silent).
        on_smoke_start: called just before the smoke test starts.
        options: the part of a ``from_lock`` to build (a pixi.lock's ``--environment``, a
            conda-lock's ``--no-dev``/``--extras``) and the PyPI source distributions to build
            (``--allow-build NAME``: each by its build backend, arbitrary code, in uv's isolated
            build environment, after its sha256 is verified; without it nothing is built).

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
    options = options or BuildOptions()
    with tempfile.TemporaryDirectory(prefix="dlsetup-create-") as tmp:
        variant_reason = ""
        if from_lock is None:
            chosen = backend_named(backend)
            progress.note(f"Locking {request.target} for this machine ({chosen.name}) ...")
            locked = chosen.lock(request, Path(tmp), force=True)
            for line in locked.sources:  # a configured mirror, a fallback: said before the build
                progress.note(f"  Source: {line}")
            lock_path, variant_reason, default_name = locked.lock_path, locked.reason, locked.name
            fmt = chosen.formats[0]
        else:
            chosen, fmt = backend_for_lock(from_lock)
            if backend not in ("conda", chosen.name):  # conda, the default, lets the lock choose
                raise InputError(
                    f"--backend {backend} builds from {backend} locks; {from_lock} is a {fmt} "
                    f"lock (the {chosen.name} backend's)",
                    fix=f"drop --backend {backend}: a lock's format chooses its backend",
                )
            # --environment, --extras, --no-dev select parts a format may not have: refused, never
            # ignored, whatever the backend
            check_options(
                from_lock,
                fmt,
                environment=options.environment,
                dev=options.dev,
                extras=options.extras,
            )
            lock_path = from_lock
            default_name = chosen.default_name(from_lock, options)
        env_name = name or (prefix.name if prefix is not None else default_name)
        if prefix is None:
            validate_env_name(env_name)
            prefix = normalize_prefix(default_envs_dir() / env_name)
        lock_copy = read_lock_text(lock_path).encode("utf-8")  # bounded, as every lock read

        def keep_lock(staged: Path) -> None:
            chosen.keep_lock(staged, lock_copy, fmt)

        with target_lock(prefix):
            try:
                installed = chosen.build(
                    lock_path,
                    prefix,
                    force=force,
                    progress=progress,
                    on_ready=keep_lock,
                    options=options,
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
