"""What a venv lock says of itself: :class:`VenvLockResult`, the lock's ``[tool.dlsetup]`` table
(:func:`tool_table`) and comment header (:func:`header_lines`), and the lines ``lock`` and
``create`` print (:func:`variant_reason`, :func:`plan_notes`, :func:`accepted_lines`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dlsetup.envs.venv.plan import request_table
from dlsetup.envs.venv.platform_locks import origin_groups

if TYPE_CHECKING:
    from pathlib import Path

    from dlsetup.envs.variant import VariantChoice
    from dlsetup.envs.venv.companion_cuda import CudaMatch, CudaMinorMismatch
    from dlsetup.envs.venv.plan import VenvLockRequest
    from dlsetup.envs.venv.platform_locks import PlatformLock
    from dlsetup.envs.venv.torch_choice import TorchIndexChoice
    from dlsetup.envs.venv.uv_sources import UsedSource


@dataclass(frozen=True)
class VenvLockResult:
    """A venv lock written.

    Attributes:
        name: ``pytorch-cu126``.
        target: the target.
        choice: the hardware choice (cpu/cuda/mps, the driver's CUDA, the GPUs).
        torch: the PyTorch variant and release.
        tensorflow: the TensorFlow requirement on a CUDA platform and why, if any.
        python: the Python version locked for.
        index_url: the default index.
        lock_path: the ``pylock.NAME.toml`` written.
        platforms: per platform.
        request: what was asked for (recorded in the lock so ``lock --check`` can replay it).
        companion_notes: a companion left out, and why (torchaudio where no release matching
            the torch release is on the sources).
        accepted_variant: the variant locked in place of the planned one (``--accept-variant``),
            else None.
        sources: each source searched and where it was configured, and the fallback taken
            when PyTorch's index was out of reach (:mod:`dlsetup.envs.reachability`).
        used_sources: the sources searched, each with its role and where it was set
            (:func:`dlsetup.envs.venv.uv_sources.used_sources`), for ``--json``.
        uv_settings: the user's uv (and pip) settings that are not sources: each forwarded to
            uv, taken over by a variable already set, or left out, and where it was set
            (:func:`dlsetup.envs.uv_settings.uv_settings`).
        uv_settings_forwarded: the names of those that reach uv (``cache-dir as
            UV_CACHE_DIR``), values left out (:func:`dlsetup.envs.pypi.uv.
            forwarded_setting_names`), for ``--json``.
        cuda_warnings: each companion of PyPI's CUDA torch built for another CUDA minor
            version of torch's major (it loads; not a pair PyTorch ships), per platform
            (:mod:`dlsetup.envs.venv.companion_cuda`).
        cuda_checked: each companion of PyPI's CUDA torch whose wheel names torch's CUDA
            build, per platform.
    """

    name: str
    target: str
    choice: VariantChoice
    torch: TorchIndexChoice | None
    tensorflow: tuple[str, str] | None
    python: str
    index_url: str
    lock_path: Path
    platforms: tuple[PlatformLock, ...] = field(default_factory=tuple)
    request: VenvLockRequest | None = None
    companion_notes: tuple[str, ...] = ()
    accepted_variant: str | None = None
    sources: tuple[str, ...] = ()
    used_sources: tuple[UsedSource, ...] = ()
    uv_settings: tuple[str, ...] = ()
    uv_settings_forwarded: tuple[str, ...] = ()
    cuda_warnings: tuple[CudaMinorMismatch, ...] = ()
    cuda_checked: tuple[CudaMatch, ...] = ()

    @property
    def torch_variant(self) -> str | None:
        """The wheel variant the lock holds: the accepted one, else the planned one."""
        if self.torch is None:
            return None
        return self.accepted_variant or self.torch.variant

    def accepted_lines(self) -> list[str]:
        """The lines on a variant taken in place of the planned one (empty: none was)."""
        return accepted_lines(self)


def tool_table(result: VenvLockResult) -> dict[str, Any]:
    """The lock's ``[tool.dlsetup]`` table: what was chosen and why."""
    from dlsetup.envs.venv.cuda_record import cuda_tables

    choice = result.choice
    table: dict[str, Any] = {
        "name": result.name,
        "target": result.target,
        "backend": "venv",
        "variant": choice.variant,
        "variant_reason": variant_reason(result),
        "python": result.python,
        "platforms": [p.platform.name for p in result.platforms],
        "index_url": result.index_url,
        "torch_index": {p.platform.name: p.torch_index for p in result.platforms if p.torch_index},
        "gpu_source": choice.gpu_source,
        "gpus": [f"{g.index}:{g.cc[0]}.{g.cc[1]} {g.name}" for g in choice.gpus],
        "sources": list(result.sources),
    }
    if choice.cuda:
        table["cuda"] = choice.cuda
    if result.torch is not None:
        table["torch_variant"] = result.torch_variant
        if result.accepted_variant is not None:
            table["planned_variant"] = result.torch.variant
        table["torch_release"] = result.torch.release
        table["companion_notes"] = list(result.companion_notes)
        table["builds"] = {
            p.platform.name: p.build.describe() for p in result.platforms if p.build is not None
        }
        table["passed_over"] = list(result.torch.passed_over)
        if result.torch.release_note:
            table["torch_release_note"] = result.torch.release_note
        # what the companion CUDA check found, for create --from-lock (read: cuda_record.py)
        table.update(cuda_tables(result.cuda_checked, result.cuda_warnings))
    if result.tensorflow is not None:
        table["tensorflow"] = result.tensorflow[0]
    if result.request is not None:
        table["request"] = request_table(result.request)
    return table


def variant_reason(result: VenvLockResult) -> str:
    """Why this build, in one line (PyTorch's reason, else TensorFlow's, else the hardware's)."""
    if result.torch is not None:
        return result.torch.reason
    if result.tensorflow is not None:
        return f"{result.choice.reason}; {result.tensorflow[1]}"
    return result.choice.reason


def header_lines(result: VenvLockResult) -> list[str]:
    """The comment at the top of the lock: what, for what, and why."""
    from dlsetup import __version__

    lines = [
        f"dlsetup lock {result.target} --backend venv (dlsetup {__version__}; resolved by uv).",
        f"Python {result.python}; install: dlsetup create --from-lock {result.lock_path.name}",
        f"  (or: uv pip sync {result.lock_path.name}, pip install -r {result.lock_path.name})",
    ]
    if result.torch is not None:
        lines.append(f"PyTorch {result.torch.release}, wheel variant {result.torch_variant}.")
        lines += accepted_lines(result)
        lines.append(f"  Why: {result.torch.reason}.")
        if result.torch.release_note:
            lines.append(f"  Release: {result.torch.release_note}.")
        lines += [f"  Passed over: {why}." for why in result.torch.passed_over]
    if result.tensorflow is not None:
        lines.append(f"TensorFlow: {result.tensorflow[0]} ({result.tensorflow[1]}).")
    elif result.target != "pytorch":
        lines.append(f"TensorFlow: without CUDA ({result.choice.reason}).")
    if result.choice.gpus:
        gpus = ", ".join(f"{g.index}:{g.cc[0]}.{g.cc[1]} {g.name}" for g in result.choice.gpus)
        lines.append(f"GPUs ({result.choice.gpu_source}): {gpus}")
    for p in result.platforms:
        index = f", PyTorch index {p.torch_index}" if p.torch_index else ""
        lines.append(f"{p.platform.name} ({p.platform.python_platform}){index}")
        if p.build is not None:
            lines.append(f"  Build: {p.build.describe()}.")
            if p.build.companions:
                pairs = ", ".join(f"{n} {v}" for n, v in p.build.companions)
                lines.append(f"  Companions: {pairs} (the variant and release of torch's).")
            lines += [f"  Unchecked: {why}." for why in p.build.unchecked]
            lines += [f"  CUDA checked: {what}." for what in p.build.checked]
            lines += [
                f"  CUDA warning: {w.message}; fix: {w.fix}."
                for w in result.cuda_warnings
                if w.platform == p.platform.name
            ]
        lines += [f"  From {where}: {names}" for where, names in origin_groups(p)]
    lines += [f"Companions: {note}." for note in result.companion_notes]
    lines += [f"Source: {line}." for line in result.sources]
    return lines


def plan_notes(result: VenvLockResult) -> tuple[str, ...]:
    """What ``create`` says before it builds from this lock, beside the sources: a variant taken
    in place of the planned one (with its download size over 1 GB), a companion left out."""
    from dlsetup.envs.venv.resolved import LARGE_DOWNLOAD, human_size

    notes: list[str] = []
    for p in result.platforms:
        if p.build is None or not p.variant_differs:
            continue
        came = dict(p.origins).get("torch", p.torch_index or "the default index")
        size = p.download_bytes
        weight = f"; up to {human_size(size)} of wheels" if size and size > LARGE_DOWNLOAD else ""
        notes.append(
            f"{p.platform.name}: no {p.expected_variant} build of PyTorch on the sources; "
            f"{p.build.describe()}, from {came}, is locked as {p.build.variant} "
            f"(--accept-variant){weight}"
        )
    return (*notes, *result.companion_notes)


def accepted_lines(result: VenvLockResult) -> list[str]:
    """The header's lines on a variant taken in place of the planned one (``--accept-variant``)."""
    from dlsetup.envs.venv.resolved import LARGE_DOWNLOAD, human_size

    if result.torch is None or result.accepted_variant is None:
        return []
    lines = [
        f"  Not the variant planned: {result.torch.variant} was planned; the sources hold no "
        f"such build, and {result.accepted_variant} was accepted (--accept-variant)."
    ]
    for p in result.platforms:
        if p.variant_differs and p.download_bytes and p.download_bytes > LARGE_DOWNLOAD:
            lines.append(
                f"  Download ({p.platform.name}): up to {human_size(p.download_bytes)} of wheels."
            )
    return lines
