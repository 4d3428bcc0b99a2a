"""``run_doctor``: gather every probe and evaluate every check.

NVML, the host, the CUDA libraries and the environment managers are read in this process (NVML
needs no GPU memory); the framework probes run in subprocesses of the target interpreter, started
first so that they run while the in-process probes do.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from dlsetup.children import deferred_stop_signals
from dlsetup.facts import Maybe, Missing
from dlsetup.probes.frameworks import FrameworkRun, FrameworksFacts, skipped

if TYPE_CHECKING:
    from dlsetup.checks.context import DoctorFacts
    from dlsetup.checks.finding import Finding
    from dlsetup.probes.cuda_libs import CudaLibsFacts
    from dlsetup.probes.envmanagers import EnvManagersFacts
    from dlsetup.probes.system import SystemFacts

T = TypeVar("T")


@dataclass(frozen=True)
class DoctorReport:
    """What doctor found.

    Attributes:
        facts: every probe's facts.
        findings: the diagnosis, errors first.
        elapsed_s: wall seconds the whole run took.
        skipped: check ids left out (``--skip``): their findings are not in ``findings``.
    """

    facts: DoctorFacts
    findings: tuple[Finding, ...]
    elapsed_s: float
    skipped: tuple[str, ...] = ()

    def count(self, severity: str) -> int:
        """How many findings have ``severity``."""
        return sum(1 for f in self.findings if f.severity == severity)

    def failed(self, strict: bool = False) -> bool:
        """True when an error finding exists (or, with ``strict``, a warning)."""
        return self.count("error") > 0 or (strict and self.count("warning") > 0)


def _guard(name: str, fn: Callable[[], T], errors: dict[str, str]) -> Maybe[T]:
    try:
        return fn()
    except Exception as exc:  # one broken probe must not end the report
        errors[name] = f"{type(exc).__name__}: {exc}"
        return Missing("error", errors[name])


def _closest(name: str) -> str:
    """The check id most like ``name`` (for the error's fix)."""
    import difflib

    from dlsetup.checks import CHECK_IDS

    return (difflib.get_close_matches(name, list(CHECK_IDS), n=1, cutoff=0) or ["memory.low_ram"])[
        0
    ]


def run_doctor(
    python: str | None = None,
    frameworks: bool = True,
    timeout: float = 60.0,
    env_dir: Path | None = None,
    full_import: bool = False,
    *,
    skip: tuple[str, ...] = (),
) -> DoctorReport:
    """Probe the machine and diagnose it.

    Args:
        python: the interpreter whose frameworks are probed (default: the one running dlsetup).
        frameworks: False skips the torch/TensorFlow probes (``--no-frameworks``).
        timeout: seconds each framework probe may take before it is killed.
        env_dir: where environments will go (free disk is measured there); default: where
            ``dlsetup create --name`` puts them (:func:`dlsetup.envs.location.default_envs_dir`).
        full_import: run the complete ``import torch`` and ``import tensorflow`` (slower)
            instead of loading only their native cores (see :mod:`dlsetup.probes.frameworks`).
        skip: check ids whose findings are left out (accepted, known conditions).

    Raises:
        MissingToolError: ``python`` does not exist or cannot run.
        InputError: ``skip`` names a check id that does not exist.
    """
    if skip:
        from dlsetup.checks import CHECK_IDS
        from dlsetup.errors import InputError

        unknown = [s for s in skip if s not in CHECK_IDS]
        if unknown:
            raise InputError(
                f"--skip {unknown[0]}: no such check id",
                fix=f"use one of the ids in docs/doctor.md, e.g. --skip {_closest(unknown[0])}",
            )
    start = time.perf_counter()
    errors: dict[str, str] = {}
    # The framework workers start first (they take seconds); the rest is imported and read while
    # they run.
    run = FrameworkRun(python, timeout, full_import=full_import) if frameworks else None
    try:
        if run is not None:
            run.start()
        from dlsetup.probes.cuda_libs import probe_cuda_libs
        from dlsetup.probes.envmanagers import probe_env_managers
        from dlsetup.probes.health_sysfs import probe_health
        from dlsetup.probes.nvidia import NvidiaFacts, probe_nvidia
        from dlsetup.probes.system import probe_system

        def system_at_envs_dir() -> SystemFacts:
            where = env_dir
            if where is None:
                from dlsetup.envs.location import default_envs_dir

                found = _guard("envs_dir", default_envs_dir, errors)
                where = found if isinstance(found, Path) else None
            return probe_system(where)

        # The in-process probes wait on NVML, ldconfig, nvcc and the managers' --version: run them
        # side by side (threads; the waits release the GIL), NVML first as the slowest on a GPU box.
        with ThreadPoolExecutor(max_workers=6) as pool:
            nvidia_f = pool.submit(_guard, "nvidia", probe_nvidia, errors)
            system_f = pool.submit(_guard, "system", system_at_envs_dir, errors)
            cuda_f = pool.submit(_guard, "cuda_libs", probe_cuda_libs, errors)
            health_f = pool.submit(_guard, "health", probe_health, errors)
            managers_f = pool.submit(
                _guard, "env_managers", lambda: probe_env_managers(python), errors
            )
            wheels_f = None
            if run is not None:
                # The checks over frameworks consult the knowledge base: parse it while the workers
                # run.
                from dlsetup.compat import load_data
                from dlsetup.probes.cuda_wheels import probe_cuda_wheels

                pool.submit(_guard, "knowledge_base", load_data, errors)
                wheels_f = pool.submit(
                    _guard, "cuda_wheels", lambda: probe_cuda_wheels(python), errors
                )
            from dlsetup.checks import evaluate
            from dlsetup.checks.context import DoctorFacts

            nvidia_facts = nvidia_f.result()
            system_facts: Maybe[SystemFacts] = system_f.result()
            cuda_facts: Maybe[CudaLibsFacts] = cuda_f.result()
            managers: Maybe[EnvManagersFacts] = managers_f.result()
            if wheels_f is not None and not isinstance(cuda_facts, Missing):
                cuda_facts = dataclasses.replace(cuda_facts, wheels=wheels_f.result())
        if isinstance(nvidia_facts, Missing):
            nvidia_facts = NvidiaFacts(status="error", status_detail=nvidia_facts.detail)
        fw: Maybe[FrameworksFacts] = (
            _guard("frameworks", run.collect, errors) if run is not None else skipped(python)
        )
    except BaseException:  # Ctrl-C, SIGTERM or a bug: no framework worker may outlive doctor
        if run is not None:
            with deferred_stop_signals():
                run.stop()
        raise
    facts = DoctorFacts(
        system=system_facts,
        nvidia=nvidia_facts,
        cuda_libs=cuda_facts,
        env_managers=managers,
        frameworks=fw,
        probe_errors=errors,
        health=health_f.result(),
    )
    findings = tuple(f for f in evaluate(facts) if f.id not in skip)
    return DoctorReport(
        facts, findings, round(time.perf_counter() - start, 3), tuple(dict.fromkeys(skip))
    )
