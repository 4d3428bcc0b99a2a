"""Which PyTorch wheel variant and release a venv lock takes (:func:`choose_torch_index`), from the
hardware choice and the knowledge base, and the PyTorch index it is searched on; the companions
(torchvision, torchaudio) locked beside that release (:func:`companion_pins`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlsetup.errors import DlsetupError, InputError

if TYPE_CHECKING:
    from dlsetup.compat.recommend import TorchPick
    from dlsetup.envs.variant import VariantChoice


#: the default PyTorch index pattern; the knowledge base's (``torch.index_url``) is used when set
DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl/{variant}"


@dataclass(frozen=True)
class TorchIndexChoice:
    """The PyTorch wheel variant chosen, and why.

    Attributes:
        variant: ``cpu``, ``cu126``, ``cu130``, ...
        release: the PyTorch release pinned (``2.14``).
        reason: why, in one line (the hardware, then the recommendation's note).
        passed_over: each newer variant of the release left out, and why.
        pick: the recommendation (``None`` for cpu).
        release_note: why this release, where the data alone does not say it (the newest
            release known has no CUDA facts; ``--torch-version`` newer than the data); empty
            otherwise.
    """

    variant: str
    release: str
    reason: str
    passed_over: tuple[str, ...] = ()
    pick: TorchPick | None = None
    release_note: str = ""


def torch_index_pattern(given: str | None) -> str:
    """The PyTorch index pattern: ``given``, else the knowledge base's, else the default."""
    if given:
        return given
    try:
        from dlsetup.compat import knowledge_base

        return str(knowledge_base().torch.index_url)
    except (DlsetupError, AttributeError):
        return DEFAULT_TORCH_INDEX


def index_of(pattern: str, variant: str) -> str:
    """``pattern`` with ``{variant}`` replaced (a URL without it is used for every variant)."""
    return pattern.replace("{variant}", variant)


def newest_supporting(releases: list[str], framework: str, python: str) -> str:
    from dlsetup.compat.frameworks import python_support

    for release in reversed(releases):
        support = python_support(framework, release)
        if support is None or support.supports(python):
            return release
    raise InputError(
        f"no {framework} release in dlsetup's knowledge base supports Python {python}",
        fix="use --python-version 3.12",
    )


def _passed_over(pick: TorchPick, choice: VariantChoice) -> tuple[str, ...]:
    """Why each variant of the release newer than the pick was left out (for the header)."""
    from packaging.version import Version

    from dlsetup.compat.arch import gpu_runs_build, parse_arch_list
    from dlsetup.compat.cuda import driver_supports_cuda
    from dlsetup.compat.frameworks import torch_variants, variant_cuda

    reasons = []
    cuda = choice.cuda or "0.0"
    for variant, arch_text in sorted(
        torch_variants(pick.release).items(), key=lambda kv: Version(variant_cuda(kv[0]))
    ):
        if Version(variant_cuda(variant)) <= Version(variant_cuda(pick.variant)):
            continue
        if arch_text is None:
            reasons.append(f"{variant}: its arch list is not known")
            continue
        verdict = driver_supports_cuda(cuda, variant_cuda(variant), choice.driver_version)
        if verdict.support not in ("full", "minor_version_compat"):
            reasons.append(f"{variant}: needs CUDA {variant_cuda(variant)}, the driver has {cuda}")
            continue
        arch = parse_arch_list(arch_text)
        misfits = [g for g in choice.gpus if not gpu_runs_build(g.cc, arch).runs]
        if misfits:
            reasons.append(f"{variant}: {misfits[0].label} is not in its arch list {arch_text}")
        elif verdict.support == "minor_version_compat":
            reasons.append(
                f"{variant}: only through minor-version compatibility (CUDA "
                f"{variant_cuda(variant)} on a {cuda} driver); a fully supported one ranks first"
            )
    return tuple(reasons)


def _release_key(text: str) -> str:
    parts = text.strip().split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise InputError(f"--torch-version {text!r} is not X.Y", fix="for example 2.14")
    return f"{int(parts[0])}.{int(parts[1])}"


def _supports(release: str, python: str) -> bool:
    from dlsetup.compat.frameworks import python_support

    support = python_support("torch", release)
    return support is None or support.supports(python)


def _rules_release(python: str) -> str | None:
    """The newest release whose CUDA builds' arch lists are known and that supports ``python``."""
    from packaging.version import Version

    from dlsetup.compat.frameworks import torch_releases, torch_variant_facts

    known = [r for r in torch_releases() if torch_variant_facts(r) and _supports(r, python)]
    return max(known, key=Version) if known else None


def _newest_without_facts_note(python: str, locked: str) -> str:
    """Why a lock has ``locked`` and not the newest release the data knows, when that newest
    release has no CUDA facts (torch 2.15 today); empty when there is nothing to explain."""
    from packaging.version import Version

    from dlsetup.compat.frameworks import torch_releases, torch_variant_facts

    newest = next((r for r in reversed(torch_releases()) if _supports(r, python)), None)
    rules = _rules_release(python)
    if newest is None or rules is None or torch_variant_facts(newest):
        return ""
    if Version(newest) <= Version(rules):
        return ""
    return (
        f"torch {newest} is the newest release the data knows; its CUDA builds are not in the "
        f"data yet, so a CUDA lock takes {rules}, the newest whose builds' arch lists are known"
        + ("" if locked in (newest, rules) else f" (this lock: {locked})")
    )


def _fitting_cuda_releases(choice: VariantChoice, python: str) -> list[str]:
    """The releases with a CUDA wheel that runs on ``choice``'s driver and every GPU."""
    from dlsetup.compat.frameworks import torch_releases
    from dlsetup.compat.recommend import recommend_torch

    assert choice.cuda is not None
    ccs = [g.cc for g in choice.gpus]
    return [
        r
        for r in torch_releases()
        if recommend_torch(choice.cuda, ccs, python, choice.driver_version, releases=(r,))
    ]


def _refuse_release(release: str, why: str, choices: list[str]) -> InputError:
    from dlsetup.errors import NoFittingBuildError

    listed = ", ".join(choices) if choices else "none"
    return NoFittingBuildError(
        f"--torch-version {release}: {why}",
        fix=f"choose one of: {listed} (or leave --torch-version out)",
    )


def choose_torch_index(
    choice: VariantChoice, python: str, torch_version: str | None = None
) -> TorchIndexChoice:
    """The PyTorch wheel variant and release for ``choice`` (doctor's recommendation for CUDA).

    Args:
        choice: the hardware choice.
        python: the target Python.
        torch_version: ``--torch-version X.Y``; None picks the release.

    Raises:
        NoFittingBuildError: a CUDA choice and no known wheel runs on the driver and every GPU;
            ``torch_version`` that the data shows has no build for the variant, the GPUs or the
            Python (the message lists the releases that have one).
        InputError: no release supports ``python``; ``torch_version`` not ``X.Y``.
    """
    from dlsetup.compat.frameworks import torch_releases
    from dlsetup.compat.recommend import recommend_torch
    from dlsetup.errors import NoFittingBuildError

    if torch_version is not None:
        return _choose_asked_release(choice, python, _release_key(torch_version))
    if choice.variant != "cuda" or choice.cuda is None:
        release = newest_supporting(torch_releases(), "torch", python)
        why = "the Metal (MPS) backend is in the macOS wheel" if choice.variant == "mps" else ""
        return TorchIndexChoice(
            "cpu",
            release,
            "; ".join(r for r in (choice.reason, why) if r),
            release_note=_newest_without_facts_note(python, release),
        )
    ccs = [g.cc for g in choice.gpus]
    pick = recommend_torch(choice.cuda, ccs, python, choice.driver_version)
    if pick is None:
        from dlsetup.compat.lines import last_pypi_torch_for

        gpus = ", ".join(g.label for g in choice.gpus) or "no GPU named"
        # a GPU no current wheel has kernels for is not helped by a newer driver: name it, and
        # the newest release that still ran on it (from the data), beside the driver advice
        current = last_pypi_torch_for((9, 0), python)
        fixes = ["lock the cpu variant (--variant cpu)"]
        why = ""
        for gpu in choice.gpus:
            last = last_pypi_torch_for(gpu.cc, python)
            if last is None:
                why = f": no PyTorch wheel dlsetup knows has kernels for {gpu.label}"
            elif current is None or last[0] != current[0]:
                fixes.append(
                    f"--torch-version {last[0]} ({last[1]}), the newest release with kernels "
                    f"for {gpu.label}"
                )
        if len(fixes) == 1 and not why:
            fixes.append("update the NVIDIA driver")
        raise NoFittingBuildError(
            f"no PyTorch CUDA wheel known to dlsetup runs on CUDA {choice.cuda} with {gpus}{why}",
            fix="; or ".join(fixes),
        )
    unchecked = "" if ccs else "; no GPU known (--gpu-arch names them): no arch list was checked"
    return TorchIndexChoice(
        pick.variant,
        pick.release,
        f"{choice.reason}; {pick.note}{unchecked}",
        _passed_over(pick, choice),
        pick,
        release_note=_newest_without_facts_note(python, pick.release),
    )


def _unverified_older(choice: VariantChoice, python: str, release: str) -> TorchIndexChoice:
    """An older release whose CUDA wheels the data names without their arch lists: the newest
    variant the driver runs, the GPUs not checked (said so); refused when none runs."""
    from packaging.version import Version

    from dlsetup.compat.cuda import driver_supports_cuda
    from dlsetup.compat.frameworks import torch_variants, variant_cuda

    assert choice.cuda is not None
    support = {
        v: driver_supports_cuda(choice.cuda, variant_cuda(v), choice.driver_version).support
        for v in torch_variants(release)
    }
    runs = [v for v, s in support.items() if s in ("full", "minor_version_compat")]
    if not runs:
        listed = ", ".join(torch_variants(release)) or "none"
        raise _refuse_release(
            release,
            f"dlsetup's data lists no CUDA wheel of PyTorch {release} that runs on CUDA "
            f"{choice.cuda} (its variants: {listed})",
            _fitting_cuda_releases(choice, python),
        )
    # full driver support first: under minor-version compatibility PTX cannot be JIT-compiled,
    # and whether these wheels reach the GPUs through SASS is not known
    variant = max(runs, key=lambda v: (support[v] == "full", Version(variant_cuda(v))))
    return TorchIndexChoice(
        variant,
        release,
        f"{choice.reason}; PyTorch {release} has a wheel built for CUDA {variant_cuda(variant)}",
        (),
        None,
        release_note=(
            f"--torch-version {release}; the arch lists of {release}'s CUDA wheels are not in "
            "dlsetup's data: the GPUs were not checked against them (dlsetup doctor reads the "
            "list from the installed build)"
        ),
    )


def _choose_asked_release(choice: VariantChoice, python: str, release: str) -> TorchIndexChoice:
    """``--torch-version``: the release asked for, refused where the data shows it cannot be."""
    from packaging.version import Version

    from dlsetup.compat.frameworks import (
        newer_than_data,
        python_support,
        torch_releases,
        torch_variant_facts,
    )
    from dlsetup.compat.recommend import recommend_torch

    known = torch_releases()
    supporting = [r for r in known if _supports(r, python)]
    newer = newer_than_data("torch", release)
    if release not in known and newer is None:
        raise _refuse_release(release, "dlsetup's data knows no such PyTorch release", supporting)
    support = python_support("torch", release)
    if support is not None and not support.supports(python):
        raise _refuse_release(
            release,
            f"PyTorch {release} supports Python {support.minimum}-{support.maximum}, not {python}",
            supporting,
        )
    notes: list[str] = []
    if newer is not None:
        notes.append(
            f"{newer.note}; its Python range is not checked, and uv finds whether the index has it"
        )
    cuda = choice.variant == "cuda" and choice.cuda is not None
    if cuda and release in known and torch_variant_facts(release):
        assert choice.cuda is not None
        ccs = [g.cc for g in choice.gpus]
        pick = recommend_torch(choice.cuda, ccs, python, choice.driver_version, releases=(release,))
        if pick is None:
            gpus = ", ".join(g.label for g in choice.gpus) or "no GPU named"
            raise _refuse_release(
                release,
                f"no CUDA wheel of PyTorch {release} in dlsetup's data runs on CUDA {choice.cuda} "
                f"with {gpus}",
                _fitting_cuda_releases(choice, python),
            )
        unchecked = (
            "" if ccs else "; no GPU known (--gpu-arch names them): no arch list was checked"
        )
        return TorchIndexChoice(
            pick.variant,
            release,
            f"{choice.reason}; {pick.note}{unchecked}",
            _passed_over(pick, choice),
            pick,
            release_note=f"--torch-version {release}",
        )
    if (
        cuda
        and release in known
        and (rules_of := _rules_release(python)) is not None
        and (Version(release) < Version(rules_of))
    ):
        assert choice.cuda is not None
        return _unverified_older(choice, python, release)
    if cuda:
        assert choice.cuda is not None
        rules = _rules_release(python)
        ccs = [g.cc for g in choice.gpus]
        pick = (
            None
            if rules is None
            else recommend_torch(choice.cuda, ccs, python, choice.driver_version, releases=(rules,))
        )
        if pick is None:
            raise _refuse_release(
                release,
                f"its CUDA builds are not in dlsetup's data, and by the rules of "
                f"{rules or 'no known release'} no CUDA wheel runs on CUDA {choice.cuda} with "
                f"{', '.join(g.label for g in choice.gpus) or 'no GPU named'}",
                _fitting_cuda_releases(choice, python),
            )
        notes.append(
            f"PyTorch {release}'s CUDA builds are not in dlsetup's data: wheel variant "
            f"{pick.variant} is chosen by the rules of {pick.release} (whose arch list every GPU "
            f"runs); {release}'s own arch list is not checked: dlsetup doctor reads it from the "
            "installed build"
        )
        return TorchIndexChoice(
            pick.variant,
            release,
            f"{choice.reason}; {pick.note}",
            (),
            pick,
            release_note=f"--torch-version {release}; " + "; ".join(notes),
        )
    why = "the Metal (MPS) backend is in the macOS wheel" if choice.variant == "mps" else ""
    if release in known and Version(release) < Version(known[-1]) and not notes:
        notes.append(f"newest known: {known[-1]}")
    return TorchIndexChoice(
        "cpu",
        release,
        "; ".join(r for r in (choice.reason, why) if r),
        release_note="; ".join([f"--torch-version {release}", *notes]),
    )


def companion_pins(release: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The companions locked beside torch ``release`` (``torchvision==0.29.*``) from the
    knowledge base's pairs, and a note for each companion no release goes with."""
    from dlsetup.compat.companions import COMPANIONS, companion_release

    pins: list[str] = []
    notes: list[str] = []
    for companion in COMPANIONS:
        pair = companion_release(companion, release)
        if pair is None:
            notes.append(
                f"{companion} left out: no {companion} release is known to go with torch {release}"
            )
        else:
            pins.append(f"{companion}=={pair.pin}")
    return tuple(pins), tuple(notes)
