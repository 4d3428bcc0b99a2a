"""The interface every environment backend implements (conda, venv, and any later one).

The pipeline (:mod:`dlsetup.envs.pipeline`, :mod:`dlsetup.envs.build`) owns the stages every
backend shares: bounded reading, credentials, ``--force`` rules, staging and the atomic swap
(:mod:`dlsetup.envs.staging`), the target lock, the Jupyter kernel and the smoke test. A backend
owns only what differs: how a request becomes a lock, how a lock is read into the one typed
model (:class:`dlsetup.envs.lockfiles.formats.LockedEnvironment`), how a lock is checked against
a request, and how a locked environment fills a staged directory. Backends never import each other, and
the commands never import a backend: they ask the pipeline for one by name or by a lock's content.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from dlsetup.envs.build_constraints import BuildConstraints
    from dlsetup.envs.lockfiles.formats import LockedEnvironment
    from dlsetup.envs.progress import Progress
    from dlsetup.envs.staging import InstallResult
    from dlsetup.envs.staleness import CheckRequest, CheckResult
    from dlsetup.probes.nvidia import NvidiaFacts


@dataclass(frozen=True)
class Locked:
    """A lock written by :meth:`Backend.lock`.

    Attributes:
        lock_path: the lock file.
        reason: why its variant was chosen, in one line.
        name: the environment name the lock proposes.
        result: the backend's full result, for the command that renders it.
        sources: where each source came from (a configured mirror, a fallback from PyTorch's
            index out of reach), one line each, for the plan ``create`` prints.
    """

    lock_path: Path
    reason: str
    name: str
    result: Any
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildOptions:
    """What selects the part of a lock to build (``create --from-lock``'s options).

    Attributes:
        environment: a pixi.lock's environment (``None``: ``default``).
        dev: install a conda-lock's ``dev`` category (``--no-dev`` drops it).
        extras: more conda-lock categories (``--extras``).
        allow_build: the PyPI source distributions the user names to be built (``--allow-build
            NAME``): built by uv after their hashes are verified; nothing else is ever built.
        build_constraints: the hashed pins those builds take their build requirements from
            (``--build-constraints FILE``, read and checked before anything is made): uv gets
            ``--build-constraints --require-build-hashes`` and refuses any other. ``None``: the
            build requirements are resolved by uv, unpinned and unverified.
    """

    environment: str | None = None
    dev: bool = True
    extras: tuple[str, ...] = ()
    allow_build: tuple[str, ...] = ()
    build_constraints: BuildConstraints | None = None


class Backend(ABC):
    """One way of making environments: its lock formats, its locking, checking and building.

    Attributes:
        name: the ``--backend`` value.
        formats: the lock formats (:func:`dlsetup.envs.pipeline.lock_format`) it builds from.
    """

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]

    @abstractmethod
    def lock(self, request: Any, output: Path, *, force: bool) -> Locked:
        """Plan a lock for ``request`` (this backend's request type) and write it into ``output``.

        Raises:
            InputError, ExistsError, SolveError, NoFittingBuildError: as the backend's planner.
        """

    @abstractmethod
    def check(
        self, lock_path: Path, request: CheckRequest, probe: Callable[[], NvidiaFacts]
    ) -> CheckResult:
        """Compare ``lock_path`` with what :meth:`lock` would make from its recorded request now."""

    @abstractmethod
    def read(self, lock_path: Path, platform: str, options: BuildOptions) -> LockedEnvironment:
        """What ``platform`` (a conda platform name: ``linux-64``) installs from ``lock_path``,
        in the one model every backend reads its locks into.

        Raises:
            InputError: a malformed lock, options or a platform it does not have (exit 2).
            IntegrityError: a package the lock would have built or run (exit 4).
        """

    @abstractmethod
    def default_name(self, lock_path: Path, options: BuildOptions) -> str:
        """The environment name a lock proposes when neither ``--name`` nor ``--prefix`` is given."""

    @abstractmethod
    def keep_lock(self, staged: Path, lock: bytes, lock_format: str) -> None:
        """Keep a copy of the lock the environment was built from inside the staged directory."""

    @abstractmethod
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
        """Build the environment of ``lock_path`` at ``prefix`` through the shared staging stage.

        ``on_ready`` is called with the staged directory before the swap.
        """
