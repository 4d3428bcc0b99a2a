"""``dlsetup lock --check pylock.toml``: is a venv lock still what ``lock --backend venv`` makes?

A venv lock records its request in the PEP 751 ``[tool.dlsetup]`` table (the standard place for a
tool's metadata): ``request`` holds the options given (target, variant, ``--cuda``,
``--gpu-arch``, platforms, Python, indexes, ``--torch-version``) and the table's other keys what
was chosen from them (variant, CUDA, GPUs, PyTorch variant and release, TensorFlow, indexes).
The check replays the request, with the options given now in place of the recorded ones, through
the same choice as ``lock`` (:func:`dlsetup.envs.venv.plan.plan_venv`: this machine's driver
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

    from dlsetup.envs.venv.plan import TARGETS

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
    from dlsetup.envs.staleness import CheckResult
    from dlsetup.envs.venv.plan import plan_venv
    from dlsetup.envs.venv.pylock import parse_pylock
    from dlsetup.errors import DlsetupError

    lock = parse_pylock(path)
    cuda_notes = _cuda_notes(lock)  # the recorded companion check, read (and checked) first
    tool = lock.tool
    recorded = _recorded_request(path, tool)
    request = _replayed(recorded, req, tool)
    locked_target = str(tool.get("target", recorded.target))
    locked_platforms = tuple(str(p) for p in tool.get("platforms", []))
    try:
        plan = plan_venv(request, probe)
    except DlsetupError as exc:
        asked = req.torch_version is not None and exc.message.startswith("--torch-version")
        if type(exc) is InputError or asked:  # a bad option given now: the user's to fix (exit 2)
            raise
        return _no_build_fits(path, tool, request, exc.message, locked_platforms)
    differences = _choice_differences(tool, request, plan, locked_target, locked_platforms)
    differences += _framework_differences(lock, tool, request, plan, locked_target)
    differences += _index_differences(
        tool,
        request,
        plan,
        locked_platforms,
        torch_differs=any(d.kind == "torch" for d in differences),
    )
    choice = plan.choice
    return CheckResult(
        lock=path,
        environment_file=path,
        source="[tool.dlsetup] request",
        backend="venv",
        target=request.target,
        variant=choice.variant,
        cuda=choice.cuda,
        platforms=tuple(p.name for p in plan.platforms),
        current=not differences,
        differences=tuple(differences),
        notes=(*_notes(recorded, request, plan), *cuda_notes),
        content_hash={},
        hash_engine="dlsetup",
        relock_options=_relock_options(request),
    )


def _recorded_request(path: Path, tool: Mapping[str, Any]) -> Any:
    """The request recorded in the lock's ``[tool.dlsetup] request`` table.

    Raises:
        InputError: the lock was not written by ``lock --backend venv``, or its table is malformed.
    """
    from dlsetup.envs.venv.plan import request_from_table

    table = tool.get("request")
    if tool.get("backend") != "venv" or not isinstance(table, dict):
        raise _malformed(path, "its [tool.dlsetup] table has no request")
    try:
        return request_from_table(table)
    except InputError as exc:
        raise _malformed(path, exc.message) from exc


def _no_build_fits(
    path: Path,
    tool: Mapping[str, Any],
    request: Any,
    message: str,
    locked_platforms: tuple[str, ...],
) -> CheckResult:
    """The result where the replayed request no longer has a fitting build: one difference."""
    from dlsetup.envs.staleness import CheckResult, Difference

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
        differences=(Difference("variant", None, f"no build fits any more: {message}"),),
        notes=(),
        content_hash={},
        hash_engine="dlsetup",
    )


def _choice_differences(
    tool: Mapping[str, Any],
    request: Any,
    plan: Any,
    locked_target: str,
    locked_platforms: tuple[str, ...],
) -> list[Difference]:
    """Where the replayed choice differs from the lock's: target, Python, platforms, variant,
    CUDA version and GPUs."""
    from dlsetup.envs.staleness import Difference

    out: list[Difference] = []
    choice = plan.choice
    if request.target != locked_target:
        out.append(
            Difference(
                "target", None, f"locked for target {locked_target}, asked for {request.target}"
            )
        )
    if plan.python != str(tool.get("python")):
        out.append(
            Difference(
                "python", None, f"locked for Python {tool.get('python')}, asked for {plan.python}"
            )
        )
    names = tuple(p.name for p in plan.platforms)
    if set(names) != set(locked_platforms):
        out.append(
            Difference(
                "platforms",
                None,
                f"locked for {', '.join(locked_platforms)}, asked for {', '.join(names)}",
            )
        )
    locked_variant = str(tool.get("variant"))
    if choice.variant != locked_variant:
        out.append(
            Difference(
                "variant",
                None,
                f"locked as {locked_variant}, now {choice.variant} ({choice.reason})",
            )
        )
    locked_cuda = tool.get("cuda")
    if choice.cuda != locked_cuda and choice.variant == locked_variant:
        out.append(
            Difference(
                "cuda",
                None,
                f"locked for CUDA {locked_cuda}, now CUDA {choice.cuda} ({choice.reason})",
            )
        )
    gpus = [f"{g.index}:{g.cc[0]}.{g.cc[1]} {g.name}" for g in choice.gpus]
    locked_gpus = [str(g) for g in tool.get("gpus", [])]
    if gpus != locked_gpus:
        out.append(
            Difference(
                "gpus",
                None,
                f"locked for GPUs {', '.join(locked_gpus) or 'none named'}, now "
                f"{', '.join(gpus) or 'none named'} ({choice.gpu_source})",
            )
        )
    return out


def _framework_differences(
    lock: Any, tool: Mapping[str, Any], request: Any, plan: Any, locked_target: str
) -> list[Difference]:
    """Where the replayed PyTorch or TensorFlow differs from the lock's, and a lock whose own
    ``torch`` is not the release its table records."""
    from dlsetup.envs.staleness import Difference

    out: list[Difference] = []
    torch = plan.torch
    if torch is not None:
        # an accepted variant (--accept-variant) is what the lock holds; the plan is replayed
        was = (tool.get("planned_variant", tool.get("torch_variant")), tool.get("torch_release"))
        if was != (torch.variant, torch.release):
            out.append(
                Difference(
                    "torch",
                    None,
                    f"locked PyTorch {was[1]} ({was[0]}), now {torch.release} ({torch.variant}): "
                    f"{torch.reason}" + (f"; {torch.release_note}" if torch.release_note else ""),
                )
            )
        out += [
            Difference(
                "environment",
                None,
                f"the lock's torch {package.version} is not the release {was[1]} its "
                "[tool.dlsetup] table records (the file was edited?)",
            )
            for package in lock.packages
            if package.name == "torch" and not package.version.startswith(f"{was[1]}.")
        ]
    tensorflow = None if plan.tensorflow is None else plan.tensorflow[0]
    if tensorflow != tool.get("tensorflow") and request.target == locked_target:
        out.append(
            Difference(
                "tensorflow",
                None,
                f"locked with {tool.get('tensorflow') or 'TensorFlow without CUDA'}, now "
                f"{tensorflow or 'TensorFlow without CUDA'}",
            )
        )
    return out


def _index_differences(
    tool: Mapping[str, Any],
    request: Any,
    plan: Any,
    locked_platforms: tuple[str, ...],
    *,
    torch_differs: bool,
) -> list[Difference]:
    """Where the replayed indexes differ from the lock's: the index, and per locked platform
    PyTorch's index (not compared where PyTorch itself differs already)."""
    from dlsetup.envs.staleness import Difference
    from dlsetup.envs.venv.torch_choice import index_of, torch_index_pattern
    from dlsetup.envs.venv.uv_sources import DEFAULT_INDEX

    out: list[Difference] = []
    index_url = request.index_url or _configured_index() or DEFAULT_INDEX
    if index_url != tool.get("index_url"):
        out.append(
            Difference(
                "index", None, f"locked from index {tool.get('index_url')}, asked for {index_url}"
            )
        )
    torch = plan.torch
    if torch is None or torch_differs:
        return out
    pattern = torch_index_pattern(request.torch_index_url)
    locked_indexes = tool.get("torch_index", {})
    for platform in plan.platforms:
        if platform.name not in locked_platforms:
            continue
        variant = torch.variant if platform.cuda_wheels else "cpu"
        want = index_of(pattern, variant)
        have = locked_indexes.get(platform.name) if isinstance(locked_indexes, dict) else None
        if have is None and _fell_back(tool):
            continue  # PyTorch's index was out of reach: the fallback is recorded, not compared
        if want != have:
            out.append(
                Difference("index", platform.name, f"PyTorch locked from {have}, now {want}")
            )
    return out


def _configured_index() -> str | None:
    """The default index configured for pip or uv (as a lock records it), if any: the lock used
    it where no ``--index-url`` was given (:mod:`dlsetup.envs.sources`)."""
    from dlsetup.envs.sources import pypi_sources

    default = next((s for s in pypi_sources() if s.kind == "index" and s.default), None)
    return default.stored if default is not None else None


def _fell_back(tool: Mapping[str, Any]) -> bool:
    """Whether the lock took torch from the fallback (PyTorch's index was out of reach)."""
    sources = tool.get("sources", [])
    return isinstance(sources, list) and any(
        isinstance(line, str) and line.startswith("PyTorch's index ") for line in sources
    )


def _notes(recorded: Any, request: Any, plan: Any) -> tuple[str, ...]:
    """What the check read from this machine, and what it does not compare."""
    choice = plan.choice
    notes: list[str] = []
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
    return tuple(notes)


def _cuda_notes(lock: Any) -> tuple[str, ...]:
    """Each companion CUDA warning the lock recorded (its header's words): a lock current by
    its request may still hold a pair PyTorch does not ship.

    Raises:
        InputError: a recorded entry that is not one dlsetup writes.
    """
    from dlsetup.envs.venv.cuda_record import recorded_cuda

    return tuple(
        f"CUDA warning recorded when locked: {w.message}; fix: {w.fix}"
        for w in recorded_cuda(lock).warnings
    )


def _relock_options(request: Any) -> tuple[str, ...]:
    """The options that lock the replayed request again (credentials stripped)."""
    relock: list[str] = []
    for arch in request.gpu_arch:
        relock += ["--gpu-arch", arch]
    for option, value in (
        ("--python-version", request.python_version),
        ("--torch-version", request.torch_version),
        ("--torch-index-url", request.torch_index_url),
        ("--index-url", request.index_url),
        ("--accept-variant", request.accept_variant),
    ):
        if value:
            relock += [option, strip_auth(value)]
    return tuple(relock)
