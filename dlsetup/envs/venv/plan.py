"""What a venv lock is asked for (:class:`VenvLockRequest`, recorded in the lock as
``[tool.dlsetup] request`` so ``lock --check`` can replay it) and what it takes before anything is
resolved (:func:`plan_venv`: the platforms, the hardware choice, the PyTorch variant and release,
TensorFlow's requirement, the requirements per platform and the lock's name)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlsetup.envs.venv.lock_platforms import VENV_PLATFORMS, VenvPlatform
from dlsetup.envs.venv.torch_choice import (
    TorchIndexChoice,
    choose_torch_index,
    companion_pins,
    newest_supporting,
)
from dlsetup.errors import InputError

if TYPE_CHECKING:
    from pathlib import Path

    from dlsetup.envs.variant import VariantChoice
    from dlsetup.probes.nvidia import NvidiaFacts


#: what a venv lock locks
TARGETS: tuple[str, ...] = ("pytorch", "tensorflow", "both")


@dataclass(frozen=True)
class VenvLockRequest:
    """What ``dlsetup lock/create TARGET --backend venv`` was asked for.

    Attributes:
        target: ``pytorch``, ``tensorflow`` or ``both``.
        variant: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        cuda: ``--cuda X.Y``, else ``None``.
        platforms: ``--platform`` values (empty: this machine's).
        all_platforms: ``--all-platforms``.
        python_version: ``X.Y`` (default: the Python running dlsetup).
        gpu_arch: ``--gpu-arch`` values.
        torch_index_url: the PyTorch index pattern (``{variant}`` is replaced) or one URL.
        index_url: the index for everything else.
        torch_version: ``--torch-version X.Y``: the PyTorch release to lock (None: chosen).
        accept_variant: ``--accept-variant``: the wheel variant the user takes where the one
            chosen is not on the sources (``cu130``; ``any``: whichever one is); None: refuse.
    """

    target: str
    variant: str = "auto"
    cuda: str | None = None
    platforms: tuple[str, ...] = ()
    all_platforms: bool = False
    python_version: str | None = None
    gpu_arch: tuple[str, ...] = ()
    torch_index_url: str | None = None
    index_url: str | None = None
    torch_version: str | None = None
    accept_variant: str | None = None


def request_table(request: VenvLockRequest) -> dict[str, Any]:
    """``[tool.dlsetup] request``: the options of the lock (those given; TOML has no null)."""
    table: dict[str, Any] = {
        "target": request.target,
        "variant": request.variant,
        "platforms": list(request.platforms),
        "all_platforms": request.all_platforms,
        "gpu_arch": list(request.gpu_arch),
    }
    for key in (
        "cuda", "python_version", "torch_index_url", "index_url", "torch_version", "accept_variant",
    ):  # fmt: skip
        value = getattr(request, key)
        if value is not None:
            table[key] = value
    return table


def request_from_table(table: Mapping[str, Any]) -> VenvLockRequest:
    """The request recorded by :func:`request_table`.

    Raises:
        InputError: the table is not one dlsetup wrote.
    """

    def text(key: str) -> str | None:
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            raise InputError(f"request.{key} is not a string", fix="lock again")
        return value

    def texts(key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f"request.{key} is not a list of strings", fix="lock again")
        return tuple(value)

    target, variant = text("target"), text("variant")
    if target is None or variant is None:
        raise InputError("request has no target or variant", fix="lock again")
    return VenvLockRequest(
        target=target,
        variant=variant,
        cuda=text("cuda"),
        platforms=texts("platforms"),
        all_platforms=bool(table.get("all_platforms", False)),
        python_version=text("python_version"),
        gpu_arch=texts("gpu_arch"),
        torch_index_url=text("torch_index_url"),
        index_url=text("index_url"),
        torch_version=text("torch_version"),
        accept_variant=text("accept_variant"),
    )


def _python(request: VenvLockRequest) -> str:
    if request.python_version is None:
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    text = request.python_version.strip()
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise InputError(
            f"--python-version {request.python_version!r} is not X.Y", fix="for example 3.11"
        )
    return text


def _tensorflow_cuda(choice: VariantChoice, python: str) -> tuple[str, str] | None:
    from dlsetup.compat.recommend import recommend_tensorflow

    if choice.variant != "cuda" or choice.cuda is None:
        return None
    pick = recommend_tensorflow(choice.cuda, python, choice.driver_version)
    return None if pick is None else (pick.requirement, pick.note)


def requirements_for(
    target: str,
    platform: VenvPlatform,
    torch: TorchIndexChoice | None,
    tensorflow_cuda: tuple[str, str] | None,
    tf_release: str | None,
    *,
    without: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """The requirements resolved for ``target`` on ``platform``: torch with its companions of
    the same release pairing (``without`` names companions left out), TensorFlow, numpy and
    ipykernel."""
    reqs: list[str] = []
    if torch is not None:
        reqs.append(f"torch=={torch.release}.*")
        pins, _ = companion_pins(torch.release)
        reqs += [p for p in pins if p.partition("==")[0] not in without]
    if target in ("tensorflow", "both"):
        if tensorflow_cuda is not None and platform.and_cuda:
            reqs.append(tensorflow_cuda[0])
        elif tf_release is not None:
            reqs.append(f"tensorflow=={tf_release}.*")
    return (*reqs, "numpy", "ipykernel")


def _platforms(request: VenvLockRequest) -> tuple[VenvPlatform, ...]:
    from dlsetup.envs.location import host_platform

    if request.all_platforms:
        return tuple(VENV_PLATFORMS.values())
    names = request.platforms or (host_platform(),)
    unknown = [n for n in names if n not in VENV_PLATFORMS]
    if unknown:
        raise InputError(
            f"--backend venv has no platform {', '.join(unknown)}",
            fix=f"use one of {', '.join(VENV_PLATFORMS)}",
        )
    return tuple(VENV_PLATFORMS[n] for n in dict.fromkeys(names))


def lock_name(target: str, torch: TorchIndexChoice | None, cuda_tf: bool) -> str:
    """``pytorch-cu126``, ``tensorflow-cuda``, ``both-cpu``."""
    if torch is not None:
        return f"{target}-{torch.variant}"
    return f"{target}-{'cuda' if cuda_tf else 'cpu'}"


def lock_file_name(name: str) -> str:
    """PEP 751's ``pylock.NAME.toml`` (no dots in NAME)."""
    return f"pylock.{name.replace('.', '-')}.toml"


def name_of_lock(path: Path, allow_build: Sequence[str] = ()) -> str:
    """The environment name of a venv lock: its ``[tool.dlsetup] name``, else from the file name
    (``pylock.NAME.toml``); the lock is read with the ``--allow-build`` names."""
    from dlsetup.envs.venv.pylock import parse_pylock

    tool = parse_pylock(path, allow_build=allow_build).tool
    if isinstance(tool.get("name"), str):
        return str(tool["name"])
    middle = path.name.removeprefix("pylock").removesuffix(".toml").strip(".")
    return middle or "venv"


@dataclass(frozen=True)
class VenvPlan:
    """What a venv lock of ``request`` takes, before anything is resolved.

    Attributes:
        python: the Python version.
        platforms: the platforms.
        choice: the hardware choice.
        torch: the PyTorch variant and release (None without PyTorch).
        tensorflow: ``tensorflow[and-cuda]`` and why, on a CUDA choice.
        tf_release: the TensorFlow release pinned elsewhere.
        name: the lock's name.
    """

    python: str
    platforms: tuple[VenvPlatform, ...]
    choice: VariantChoice
    torch: TorchIndexChoice | None
    tensorflow: tuple[str, str] | None
    tf_release: str | None
    name: str


def plan_venv(request: VenvLockRequest, probe: Callable[[], NvidiaFacts] | None = None) -> VenvPlan:
    """Choose the variant, the PyTorch index and release, TensorFlow's requirement and the name.

    Args:
        request: what to lock.
        probe: this machine's NVIDIA facts (default: NVML); called only when needed.

    Raises:
        InputError: a bad option, an unknown platform, an impossible combination.
        NoFittingBuildError: no PyTorch wheel runs on the driver and every GPU.
    """
    from dlsetup.compat.frameworks import tf_releases
    from dlsetup.envs.variant import choose_variant

    if request.target not in TARGETS:
        raise InputError(
            f"--backend venv locks {', '.join(TARGETS)}, not {request.target!r}",
            fix="an environment .yml file is a conda environment: use --backend conda",
        )
    python = _python(request)
    platforms = _platforms(request)
    has_torch = request.target in ("pytorch", "both")
    choice = choose_variant(
        request.variant,
        cuda=request.cuda,
        platforms=tuple(p.name for p in platforms),
        has_variant=lambda v: v == "cuda" or (v == "mps" and has_torch),
        gpu_arch=request.gpu_arch,
        **({} if probe is None else {"probe": probe}),
    )
    if request.torch_version is not None and not has_torch:
        raise InputError(
            f"--torch-version applies to pytorch and both, not {request.target}",
            fix="drop --torch-version",
        )
    torch = choose_torch_index(choice, python, request.torch_version) if has_torch else None
    tf_cuda = _tensorflow_cuda(choice, python) if request.target != "pytorch" else None
    tf_release = (
        newest_supporting(tf_releases(), "tensorflow", python)
        if request.target != "pytorch"
        else None
    )
    name = lock_name(request.target, torch, tf_cuda is not None)
    return VenvPlan(python, platforms, choice, torch, tf_cuda, tf_release, name)
