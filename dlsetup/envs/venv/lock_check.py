"""``dlsetup lock --check pylock.toml``: is a venv lock still what ``lock --backend venv`` makes?

A venv lock records its request in the PEP 751 ``[tool.dlsetup]`` table (the standard place for a
tool's metadata): ``request`` holds the options given (target, variant, ``--cuda``,
``--gpu-arch``, platforms, Python, indexes, ``--torch-version``) and the table's other keys what
was chosen from them (variant, CUDA, GPUs, PyTorch variant and release, TensorFlow, indexes).
The check replays the request, with the options given now in place of the recorded ones, through
the same choice as ``lock`` (:func:`dlsetup.envs.venv.lock.plan_venv`: this machine's driver
where the lock's CUDA version and GPUs came from it, the knowledge base as it is now) and
compares. No resolve, no network: what uv would pick from the indexes today is not compared
(a new numpy is no reason to call a lock stale); that the lock's own ``torch`` is the release
its table records is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlsetup.envs.credentials import strip_auth
from dlsetup.errors import InputError

if TYPE_CHECKING:
    from dlsetup.envs.staleness import CheckRequest, CheckResult, Difference
    from dlsetup.probes.nvidia import NvidiaFacts


def _malformed(path: Path, what: str) -> InputError:
    return InputError(
        f"{path} is not a venv lock written by dlsetup lock --backend venv: {what}",
        fix="lock again: dlsetup lock TARGET --backend venv",
    )


def _replayed(recorded: Any, req: CheckRequest, tool: Mapping[str, Any]) -> Any:
    """The recorded request with the options given now in its place."""
    import dataclasses

    from dlsetup.envs.venv.lock import TARGETS

    if req.target is not None and req.target not in TARGETS:
        raise InputError(
            f"a venv lock locks {', '.join(TARGETS)}, not {req.target!r}",
            fix="an environment .yml file is a conda environment: check a conda lock",
        )
    if req.channels:
        raise InputError("--channel does not apply to a venv lock", fix="drop --channel")
    variant = req.variant or recorded.variant
    hardware_cleared = req.variant in ("cpu", "mps")
    cuda = req.cuda or (None if hardware_cleared else recorded.cuda)
    gpu_arch = req.gpu_arch or (() if hardware_cleared else recorded.gpu_arch)
    locked_platforms = tuple(str(p) for p in tool.get("platforms", []))
    platforms = req.platforms or (() if req.all_platforms else locked_platforms)
    return dataclasses.replace(
        recorded,
        target=req.target or recorded.target,
        variant=variant,
        cuda=cuda,
        gpu_arch=gpu_arch,
        platforms=platforms,
        all_platforms=req.all_platforms or (recorded.all_platforms and not req.platforms),
        python_version=req.python_version or str(tool.get("python") or "") or None,
        torch_version=req.torch_version or recorded.torch_version,
        torch_index_url=req.torch_index_url or recorded.torch_index_url,
        index_url=req.index_url or recorded.index_url,
    )


def check_venv_lock(
    path: Path, req: CheckRequest, probe: Callable[[], NvidiaFacts] | None = None
) -> CheckResult:
    """Compare the venv lock ``path`` with what its request, replayed now, would choose.

    Args:
        path: a ``pylock.toml`` / ``pylock.NAME.toml`` written by ``dlsetup lock --backend venv``.
        req: options given now (None or empty: the lock's own).
        probe: this machine's NVIDIA facts (default: NVML), called only where the lock's CUDA
            version or GPUs came from the driver and no ``--cuda``/``--gpu-arch`` is given.

    Raises:
        InputError: not TOML, not PEP 751, no ``[tool.dlsetup] request`` table, or a bad option
            (exit 2). A replayed request that no longer has a fitting build is a difference, not
            an error.
    """
    from dlsetup.envs.staleness import CheckResult, Difference
    from dlsetup.envs.venv.pylock import parse_pylock
    from dlsetup.envs.venv.lock import (
        DEFAULT_INDEX,
        index_of,
        plan_venv,
        request_from_table,
        torch_index_pattern,
    )
    from dlsetup.errors import DlsetupError

    lock = parse_pylock(path)
    tool = lock.tool
    table = tool.get("request")
    if tool.get("backend") != "venv" or not isinstance(table, dict):
        raise _malformed(path, "its [tool.dlsetup] table has no request")
    try:
        recorded = request_from_table(table)
    except InputError as exc:
        raise _malformed(path, exc.message) from exc
    request = _replayed(recorded, req, tool)
    differences: list[Difference] = []
    notes: list[str] = []

    def add(kind: str, message: str, platform: str | None = None) -> None:
        differences.append(Difference(kind, platform, message))

    locked_target = str(tool.get("target", recorded.target))
    locked_platforms = tuple(str(p) for p in tool.get("platforms", []))
    try:
        plan = plan_venv(request, probe)
    except DlsetupError as exc:
        asked = req.torch_version is not None and exc.message.startswith("--torch-version")
        if type(exc) is InputError or asked:  # a bad option given now: the user's to fix (exit 2)
            raise
        add("variant", f"no build fits any more: {exc.message}")
        return CheckResult(
            lock=path,
            environment_file=path,
            source="[tool.dlsetup] request",
            backend="venv",
            target=request.target,
            variant=str(tool.get("variant", request.variant)),
            cuda=request.cuda,
            platforms=locked_platforms or ("linux-64",),
            current=False,
            differences=tuple(differences),
            notes=tuple(notes),
            content_hash={},
            hash_engine="dlsetup",
        )
    choice = plan.choice
    if request.target != locked_target:
        add("target", f"locked for target {locked_target}, asked for {request.target}")
    if plan.python != str(tool.get("python")):
        add("python", f"locked for Python {tool.get('python')}, asked for {plan.python}")
    names = tuple(p.name for p in plan.platforms)
    if set(names) != set(locked_platforms):
        add(
            "platforms",
            f"locked for {', '.join(locked_platforms)}, asked for {', '.join(names)}",
        )
    locked_variant = str(tool.get("variant"))
    if choice.variant != locked_variant:
        add("variant", f"locked as {locked_variant}, now {choice.variant} ({choice.reason})")
    locked_cuda = tool.get("cuda")
    if choice.cuda != locked_cuda and choice.variant == locked_variant:
        add("cuda", f"locked for CUDA {locked_cuda}, now CUDA {choice.cuda} ({choice.reason})")
    gpus = [f"{g.index}:{g.cc[0]}.{g.cc[1]} {g.name}" for g in choice.gpus]
    locked_gpus = [str(g) for g in tool.get("gpus", [])]
    if gpus != locked_gpus:
        add(
            "gpus",
            f"locked for GPUs {', '.join(locked_gpus) or 'none named'}, now "
            f"{', '.join(gpus) or 'none named'} ({choice.gpu_source})",
        )
    torch = plan.torch
    if torch is not None:
        was = (tool.get("torch_variant"), tool.get("torch_release"))
        if was != (torch.variant, torch.release):
            add(
                "torch",
                f"locked PyTorch {was[1]} ({was[0]}), now {torch.release} ({torch.variant}): "
                f"{torch.reason}" + (f"; {torch.release_note}" if torch.release_note else ""),
            )
        for package in lock.packages:
            if package.name == "torch" and not package.version.startswith(f"{was[1]}."):
                add(
                    "environment",
                    f"the lock's torch {package.version} is not the release {was[1]} its "
                    "[tool.dlsetup] table records (the file was edited?)",
                )
    tensorflow = None if plan.tensorflow is None else plan.tensorflow[0]
    if tensorflow != tool.get("tensorflow") and request.target == locked_target:
        add(
            "tensorflow",
            f"locked with {tool.get('tensorflow') or 'TensorFlow without CUDA'}, now "
            f"{tensorflow or 'TensorFlow without CUDA'}",
        )
    index_url = request.index_url or DEFAULT_INDEX
    if index_url != tool.get("index_url"):
        add("index", f"locked from index {tool.get('index_url')}, asked for {index_url}")
    if torch is not None:
        pattern = torch_index_pattern(request.torch_index_url)
        locked_indexes = tool.get("torch_index", {})
        for platform in plan.platforms:
            if platform.name not in locked_platforms:
                continue
            variant = torch.variant if platform.cuda_wheels else "cpu"
            want = index_of(pattern, variant)
            have = locked_indexes.get(platform.name) if isinstance(locked_indexes, dict) else None
            if want != have and not any(d.kind == "torch" for d in differences):
                add("index", f"PyTorch locked from {have}, now {want}", platform.name)
    if choice.gpu_source.startswith("driver") or (
        choice.variant == "cpu" and recorded.variant == "auto" and request.cuda is None
    ):
        notes.append(
            f"the variant, CUDA version and GPUs were read from this machine: {choice.reason}"
        )
    notes.append(
        "replayed the request in [tool.dlsetup] without resolving: newer versions of other "
        "packages on the indexes are not compared"
    )
    relock: list[str] = []
    for arch in request.gpu_arch:
        relock += ["--gpu-arch", arch]
    for option, value in (
        ("--python-version", request.python_version),
        ("--torch-version", request.torch_version),
        ("--torch-index-url", request.torch_index_url),
        ("--index-url", request.index_url),
    ):
        if value:
            relock += [option, strip_auth(value)]
    return CheckResult(
        lock=path,
        environment_file=path,
        source="[tool.dlsetup] request",
        backend="venv",
        target=request.target,
        variant=choice.variant,
        cuda=choice.cuda,
        platforms=names,
        current=not differences,
        differences=tuple(differences),
        notes=tuple(notes),
        content_hash={},
        hash_engine="dlsetup",
        relock_options=tuple(relock),
    )
