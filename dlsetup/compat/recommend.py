"""Pick the PyTorch wheel that fits a driver and a set of GPUs, or the TensorFlow release that fits
a driver, as a pip command."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from packaging.version import Version

from dlsetup.compat.arch import CC, gpu_runs_build, parse_arch_list
from dlsetup.compat.cuda import driver_supports_cuda
from dlsetup.compat.frameworks import (
    python_support,
    release_key,
    tf_and_cuda_first,
    tf_release_cuda,
    tf_releases,
    torch_index_url,
    torch_releases,
    torch_rules_release,
    torch_variant_facts,
    torch_variants,
    variant_cuda,
)


@dataclass(frozen=True)
class TorchPick:
    """A PyTorch build for this machine.

    Attributes:
        release: ``"2.14"``.
        variant: ``"cu126"``.
        command: the pip command that installs it.
        support: ``full`` or ``minor_version_compat`` (driver older than the build's CUDA minor).
        note: why this build, in one sentence.
    """

    release: str
    variant: str
    command: str
    support: str
    note: str


def recommend_torch(
    driver_cuda: str,
    gpu_ccs: list[CC],
    python: str | None = None,
    driver_version: str | None = None,
    installed: str | None = None,
    *,
    releases: Collection[str] | None = None,
) -> TorchPick | None:
    """The newest PyTorch CUDA wheel this driver runs and whose kernels every GPU can run.

    Ranks by release (newest first), then full driver support over minor-version compatibility,
    then the newest CUDA variant. A build that runs only through minor-version compatibility is
    accepted only when every GPU has SASS in it: PTX newer than the driver cannot be JIT-compiled
    under minor-version compatibility. Variants whose arch list is not verified are skipped.

    Args:
        driver_cuda: the driver's CUDA version (NVML), ``"12.4"``.
        gpu_ccs: compute capabilities of the GPUs to serve.
        python: the target Python (``"3.11"``); releases that do not support it are skipped.
        driver_version: the driver version, for the MVC floor.
        installed: the torch version installed now (``"2.16.0+cpu"``), if any. When it is newer
            than the newest release whose variants the data knows, and that release is the pick,
            the pick names the installed release instead (its variant chosen by the rules of the
            known one, and said so): the data ending is no reason to go back a release.
        releases: consider only these releases (``--torch-version``); None: every known one.

    Returns:
        A :class:`TorchPick`, or None when no known wheel fits (driver too old for every build).
    """
    best: tuple[tuple[Version, int, Version], TorchPick] | None = None
    for release in torch_releases():
        if releases is not None and release not in releases:
            continue
        if python is not None:
            support = python_support("torch", release)
            if support is not None and not support.supports(python):
                continue
        for variant, arch_text in torch_variants(release).items():
            if arch_text is None:
                continue
            cuda = variant_cuda(variant)
            verdict = driver_supports_cuda(driver_cuda, cuda, driver_version)
            if verdict.support not in ("full", "minor_version_compat"):
                continue
            arch = parse_arch_list(arch_text)
            runs = [gpu_runs_build(cc, arch) for cc in gpu_ccs]
            if not all(r.runs for r in runs):
                continue
            if verdict.support == "minor_version_compat" and any(r.how != "sass" for r in runs):
                continue
            rank = (Version(release), int(verdict.support == "full"), Version(cuda))
            if best is not None and rank <= best[0]:
                continue
            url = torch_index_url(variant)
            note = f"PyTorch {release} built for CUDA {cuda}"
            if verdict.support == "minor_version_compat":
                note += ", runs on this driver through minor-version compatibility"
                if _gpus_take_driver_for(cuda, gpu_ccs):  # never a driver past a GPU's branch
                    note += (
                        f"; a driver >= {verdict.full_support_driver} gives full CUDA {cuda} "
                        "support"
                    )
            best = (
                rank,
                TorchPick(
                    release,
                    variant,
                    f"pip install torch=={release}.* --index-url {url}",
                    verdict.support,
                    note,
                ),
            )
    if best is None:
        return None
    return _no_older_than_installed(best[1], installed)


def _no_older_than_installed(pick: TorchPick, installed: str | None) -> TorchPick:
    key = None if installed is None else release_key(installed)
    if (
        key is None
        or Version(key) <= Version(pick.release)
        or torch_variant_facts(key)
        or pick.release != torch_rules_release()
    ):
        return pick
    url = torch_index_url(pick.variant)
    return TorchPick(
        key,
        pick.variant,
        f"pip install torch=={key}.* --index-url {url}",
        pick.support,
        f"{pick.note}; {key} installed is kept, its variant chosen by the rules of "
        f"{pick.release}: dlsetup's data does not know {key}'s CUDA variants",
    )


@dataclass(frozen=True)
class TensorflowPick:
    """A TensorFlow release with CUDA for this machine.

    Attributes:
        release: ``"2.21"``.
        requirement: ``"tensorflow[and-cuda]==2.21.*"`` (CUDA and cuDNN come as pip wheels).
        support: ``full`` or ``minor_version_compat``.
        note: why this release, in one sentence.
    """

    release: str
    requirement: str
    support: str
    note: str


def recommend_tensorflow(
    driver_cuda: str,
    python: str | None = None,
    driver_version: str | None = None,
    installed: str | None = None,
) -> TensorflowPick | None:
    """The newest TensorFlow with the ``and-cuda`` extra whose CUDA this driver fully supports,
    else the newest it runs through minor-version compatibility.

    Full support comes first because under minor-version compatibility the driver cannot
    JIT-compile PTX, and TensorFlow reaches some GPUs only through PTX (``compute_90`` for Hopper);
    its per-release arch lists are not in the knowledge base.

    Args:
        driver_cuda: the driver's CUDA version (NVML), ``"11.4"``.
        python: the target Python; releases that do not support it are skipped.
        driver_version: the driver version, for the minor-version-compatibility floor.
        installed: the TensorFlow version installed now, if any. When it is newer than every
            release the data knows and the newest known one is the pick, the pick names the
            installed release (judged by the rules of the known one, and said so).

    Returns:
        A :class:`TensorflowPick`, or None when no such release runs on this driver.
    """
    first = Version(tf_and_cuda_first())
    picks: list[TensorflowPick] = []
    for release in reversed(tf_releases()):
        if Version(release) < first:
            break
        if python is not None:
            support = python_support("tensorflow", release)
            if support is not None and not support.supports(python):
                continue
        cuda = tf_release_cuda(release)
        verdict = driver_supports_cuda(driver_cuda, cuda, driver_version)
        if verdict.support not in ("full", "minor_version_compat"):
            continue
        note = f"TensorFlow {release} built for CUDA {cuda}"
        if verdict.support == "minor_version_compat":
            note += ", runs on this driver through minor-version compatibility"
        picks.append(
            TensorflowPick(release, f"tensorflow[and-cuda]=={release}.*", verdict.support, note)
        )
    full = [p for p in picks if p.support == "full"]
    pick = full[0] if full else picks[0] if picks else None
    key = None if installed is None else release_key(installed)
    known = tf_releases()
    if pick is None or key is None or key in known or pick.release != known[-1]:
        return pick
    if Version(key) <= Version(pick.release):
        return pick
    return TensorflowPick(
        key,
        f"tensorflow[and-cuda]=={key}.*",
        pick.support,
        f"{pick.note}; {key} installed is kept, judged by the rules of {pick.release}: "
        f"dlsetup's data does not know {key}",
    )


def _gpus_take_driver_for(cuda: str, gpu_ccs: list[CC]) -> bool:
    """True unless a GPU's last driver branch (Kepler: R470) stops below CUDA ``cuda``."""
    from dlsetup.compat import knowledge_base
    from dlsetup.compat.cuda import parse_cuda

    limits = knowledge_base().driver_limits
    return all(
        parse_cuda(limit.last_cuda) >= parse_cuda(cuda)
        for cc in gpu_ccs
        for limit in limits
        if limit.covers(cc)
    )
