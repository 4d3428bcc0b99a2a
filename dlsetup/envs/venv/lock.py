"""``--backend venv``: lock PyTorch/TensorFlow into a PEP 751 ``pylock.toml`` with uv, and build a
virtual environment from it with uv, atomically.

Which PyTorch build: the variant is chosen as for conda locks (:func:`dlsetup.envs.variant.
choose_variant`: the driver's CUDA version and every GPU's compute capability from NVML, or
``--cuda`` / ``--gpu-arch`` for another machine), then the wheel variant comes from
:func:`dlsetup.compat.recommend.recommend_torch`, the same function whose pip command
``dlsetup doctor`` prints as a fix: the newest CUDA variant the driver runs and whose arch list
every GPU runs. Its index (``https://download.pytorch.org/whl/<variant>``, ``--torch-index-url``
overrides) is searched before the default index, and the release is pinned to the one whose arch
list was checked (``torch==2.14.*``): a newer release on the same index may have dropped a GPU.
No usable GPU: the cpu index. TensorFlow: ``tensorflow[and-cuda]`` on Linux x86_64 with a CUDA
variant (:func:`dlsetup.compat.recommend.recommend_tensorflow`), plain ``tensorflow`` elsewhere.

Platforms: uv resolves one at a time (``uv pip compile --python-platform``); the locks are merged
into one file (:mod:`dlsetup.envs.venv.pylock`). The CUDA wheel index applies where PyTorch publishes
CUDA wheels whose arch lists the knowledge base has (linux-64, win-64); other platforms get the
cpu index (on macOS that wheel has the MPS backend).

Build: ``uv venv --relocatable`` in ``.dlsetup-partial-NAME-PID/env`` beside the target, then
``uv pip sync --require-hashes`` of the lock (every package a wheel with a sha256, checked
first by :func:`dlsetup.envs.venv.pylock.parse_pylock`; uv compares each wheel with it), then the same
rename into place, target lock, prefix rules and clean-up of a killed build as conda
environments (:mod:`dlsetup.envs.conda.install`, :mod:`dlsetup.envs.safety`). A relocatable venv's
scripts find their interpreter relative to themselves, so the renamed venv's ``python``,
``activate`` and console scripts work at the final path.

Modules: the platforms (:mod:`~dlsetup.envs.venv.lock_platforms`), the request and plan
(:mod:`~dlsetup.envs.venv.plan`), the PyTorch variant, release and companions
(:mod:`~dlsetup.envs.venv.torch_choice`), the sources and the uv call
(:mod:`~dlsetup.envs.venv.uv_sources`), each platform's resolution
(:mod:`~dlsetup.envs.venv.platform_locks`), and what the lock says of itself
(:mod:`~dlsetup.envs.venv.lock_report`); this module writes the lock, and its names stay
importable from here.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from dlsetup.envs.credentials import strip_auth
from dlsetup.envs.pypi.uv import forwarded_setting_names, uv_cache
from dlsetup.envs.venv.companion_cuda import check_companion_cuda
from dlsetup.envs.venv.lock_platforms import VENV_PLATFORMS, VenvPlatform
from dlsetup.envs.venv.lock_report import (
    VenvLockResult,
    accepted_lines,
    header_lines,
    plan_notes,
    tool_table,
    variant_reason,
)
from dlsetup.envs.venv.plan import (
    TARGETS,
    VenvLockRequest,
    VenvPlan,
    lock_file_name,
    lock_name,
    name_of_lock,
    plan_venv,
    request_from_table,
    request_table,
    requirements_for,
)
from dlsetup.envs.venv.platform_locks import (
    PlatformLock,
    origin_groups,
    resolve_on_sources,
    variant_to_lock,
)
from dlsetup.envs.venv.torch_choice import (
    DEFAULT_TORCH_INDEX,
    TorchIndexChoice,
    choose_torch_index,
    companion_pins,
    index_of,
    torch_index_pattern,
)
from dlsetup.envs.venv.uv_sources import DEFAULT_INDEX, LockSources, plan_routes, used_sources
from dlsetup.errors import SolveError

if TYPE_CHECKING:
    from dlsetup.envs.reachability import VenvSources

__all__ = [
    "DEFAULT_INDEX",
    "DEFAULT_TORCH_INDEX",
    "TARGETS",
    "VENV_PLATFORMS",
    "PlatformLock",
    "TorchIndexChoice",
    "VenvLockRequest",
    "VenvLockResult",
    "VenvPlan",
    "VenvPlatform",
    "accepted_lines",
    "choose_torch_index",
    "companion_pins",
    "header_lines",
    "index_of",
    "lock_file_name",
    "lock_for_create",
    "lock_name",
    "lock_venv",
    "name_of_lock",
    "origin_groups",
    "plan_notes",
    "plan_venv",
    "request_from_table",
    "request_table",
    "requirements_for",
    "tool_table",
    "torch_index_pattern",
    "variant_reason",
    "variant_to_lock",
]


def lock_venv(request: VenvLockRequest, output: Path, *, force: bool) -> VenvLockResult:
    """Choose the PyTorch index for this machine (or the one described), resolve, check what was
    resolved against the plan, write the lock.

    Args:
        request: what to lock.
        output: the directory for ``pylock.NAME.toml``.
        force: replace an existing lock file.

    Raises:
        InputError: a bad option, an unknown platform, an impossible combination.
        NoFittingBuildError: no PyTorch wheel runs on the driver and every GPU; the sources
            hold only another variant (not accepted) or no torchvision that goes with torch.
        ExistsError: the lock exists and ``force`` is false.
        SolveError: uv could not resolve.
        MissingToolError: no uv.
    """
    from dlsetup.envs.uv_settings import uv_settings
    from dlsetup.envs.venv.pylock import merge_locks, write_pylock
    from dlsetup.errors import ExistsError

    plan = plan_venv(request)
    lock_path = output / lock_file_name(plan.name)
    if lock_path.exists() and not force:
        raise ExistsError(f"{lock_path} exists", fix="pass --force to replace it")
    pattern = torch_index_pattern(request.torch_index_url)
    routes = plan_routes(request, plan, pattern)  # every source probed once; the fallback stated
    index_url = routes.default_index.url
    # credentials: ${VAR} filled in for uv only, a private uv cache; files and output get none
    with (
        tempfile.TemporaryDirectory(prefix="dlsetup-venv-lock-") as tmp,
        uv_cache((pattern, *routes.urls())) as cache,
    ):
        sources = LockSources(
            index_url,
            plan.python,
            Path(tmp),
            cache,
            tuple(s.url for s in routes.indexes),
            tuple(s.url for s in routes.find_links),
        )
        try:
            plan, parts, results, notes = resolve_on_sources(plan, request, routes, sources)
        except SolveError as exc:
            raise routes.explain_failure(exc) from exc
        # what was resolved, checked before anything is installed: the variant labelled, then
        # each companion of PyPI's CUDA torch against torch's CUDA build (read from its wheel)
        accepted = variant_to_lock(request, tuple(results))
        results, cuda_warnings, cuda_checked = check_companion_cuda(
            results, parts, sources, _torch_indexes(plan, routes)
        )
    name = plan.name if accepted is None else f"{request.target}-{accepted}"
    if accepted is not None:
        lock_path = output / lock_file_name(name)
        if lock_path.exists() and not force:
            raise ExistsError(f"{lock_path} exists", fix="pass --force to replace it")
    result = VenvLockResult(
        name=name,
        target=request.target,
        choice=plan.choice,
        torch=plan.torch,
        tensorflow=plan.tensorflow,
        python=plan.python,
        index_url=strip_auth(index_url),
        lock_path=lock_path,
        platforms=tuple(results),
        request=dataclasses.replace(
            request,
            torch_index_url=request.torch_index_url and strip_auth(request.torch_index_url),
            index_url=request.index_url and strip_auth(request.index_url),
        ),
        companion_notes=tuple(notes),
        cuda_warnings=tuple(cuda_warnings),
        cuda_checked=tuple(cuda_checked),
        accepted_variant=accepted,
        sources=tuple(routes.lines()),
        used_sources=used_sources(routes),
        uv_settings=tuple(uv_settings().lines()),
        uv_settings_forwarded=forwarded_setting_names(),
    )
    output.mkdir(parents=True, exist_ok=True)
    write_pylock(lock_path, merge_locks(parts, tool_table(result)), header_lines(result))
    return result


def _torch_indexes(plan: VenvPlan, routes: VenvSources) -> dict[str, str]:
    """Each platform's PyTorch index, by platform name (none without PyTorch)."""
    if plan.torch is None:
        return {}
    return {
        p.name: routes.torch_index(plan.torch.variant if p.cuda_wheels else "cpu")
        for p in plan.platforms
    }


def lock_for_create(request: VenvLockRequest, directory: Path) -> tuple[Path, str, str]:
    """Lock for ``dlsetup create TARGET --backend venv``: (lock path, why, environment name)."""
    result = lock_venv(request, directory, force=True)
    return result.lock_path, variant_reason(result), result.name
