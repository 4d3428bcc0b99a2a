"""What ``dlsetup lock --check`` asks and answers, for every backend: the options given now
(:class:`CheckRequest`), and the verdict (:class:`CheckResult`, one :class:`Difference` per reason a
lock is stale). The check itself is the backend's (:meth:`dlsetup.envs.backend.Backend.check`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Difference:
    """One reason the lock is stale.

    Attributes:
        kind: ``environment``, ``variant``, ``cuda``, ``gpus``, ``platforms``, ``python``,
            ``channels``, ``cuda_line``, ``virtual_packages`` or ``content_hash``; for a venv
            lock also ``torch``, ``tensorflow`` and ``index``.
        platform: the platform it concerns, or None for the whole lock.
        message: one line for people ("environment file changed: added torchvision").
    """

    kind: str
    platform: str | None
    message: str


@dataclass(frozen=True)
class CheckResult:
    """The verdict of :func:`check_lock`.

    Attributes:
        lock: the lock checked.
        environment_file: the rendered environment file beside it.
        source: what was re-rendered: the shipped file of the target, the user's environment
            file, or None when a user's file was not named (integrity only).
        variant: the variant locked; None for a lock conda-lock made (it records none).
        current: True when nothing differs.
        differences: one per reason, in the order found.
        notes: what was not compared, and why.
        content_hash: per platform ``{"recorded": ..., "expected": ...}`` (``expected`` None when
            it could not be computed).
        hash_engine: ``dlsetup`` (recomputed here) or ``conda-lock`` (its own function decided).
        seconds: how long the check took.
        relock_options: the options (besides target, variant, CUDA, platforms and output) that
            make the same request again: ``--gpu-arch`` given by hand, ``--python-version``,
            ``--torch-version``, indexes; what the lock read from this machine's driver is left
            out, so a new lock reads it again.
        backend: the backend whose lock it is (``conda``, ``venv``).
        relock_command: the whole command that makes the lock again, where it is not
            ``dlsetup lock`` (a lock conda-lock made: its ``conda-lock lock`` command); None:
            ``dlsetup lock`` with :attr:`relock_options`.
    """

    lock: Path
    environment_file: Path
    source: str | None
    target: str
    variant: str | None
    cuda: str | None
    platforms: tuple[str, ...]
    current: bool
    differences: tuple[Difference, ...]
    notes: tuple[str, ...]
    content_hash: dict[str, dict[str, str | None]]
    hash_engine: str
    seconds: float = 0.0
    relock_options: tuple[str, ...] = ()
    backend: str = "conda"
    relock_command: str | None = None


@dataclass(frozen=True)
class CheckRequest:
    """Options given with ``--check``; None or empty: reuse what the lock records.

    ``variant="auto"`` (given explicitly) chooses the variant for this machine again.
    """

    target: str | None = None
    variant: str | None = None
    cuda: str | None = None
    gpu_arch: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    all_platforms: bool = False
    python_version: str | None = None
    channels: tuple[str, ...] = ()
    torch_version: str | None = None
    torch_index_url: str | None = None
    index_url: str | None = None
