"""Checks over torch's companions (torchvision, torchaudio) against torch and the pairs table.

Per companion, at most one finding, the first that applies:

* ``<name>.release_mismatch``: the installed release does not go with the installed torch
  (``companions:`` of the knowledge base);
* ``<name>.cpu_build_with_cuda_torch`` / ``<name>.cuda_build_with_cpu_torch`` /
  ``<name>.cuda_mismatch``: the right release, built for another CUDA (or none) than torch;
* ``<name>.extension_failed``: the right release and build, and still its import or compiled
  extension fails (the loader's own words in the message).

Every fix installs the companion release that goes with this torch, for torch's own build, in the
environment's language: conda-forge's ``name=version=build`` in a conda prefix, pip from PyTorch's
index of torch's variant otherwise (:mod:`dlsetup.compat.companions`).
"""

from __future__ import annotations

from dlsetup.checks.context import DoctorFacts
from dlsetup.checks.finding import Finding, Severity
from dlsetup.checks.fix_language import conda_companion_command, installer, probed_env
from dlsetup.compat.companions import (
    COMPANIONS,
    CompanionPair,
    conda_spec,
    install_companion_command,
    pair_fits,
)
from dlsetup.facts import Missing
from dlsetup.installer import pip_owned
from dlsetup.probes.frameworks import CompanionBuild, FrameworkProbe, TorchBuild

#: The check ids of one companion, for the catalogue.
KINDS: dict[str, Severity] = {
    "release_mismatch": "error",
    "cpu_build_with_cuda_torch": "error",
    "cuda_build_with_cpu_torch": "error",
    "cuda_mismatch": "error",
    "extension_failed": "error",
}


def _torch(facts: DoctorFacts) -> tuple[FrameworkProbe, TorchBuild] | None:
    fw = facts.frameworks
    if isinstance(fw, Missing) or isinstance(fw.torch, Missing):
        return None
    probe = fw.torch
    if probe.status != "ok" or not isinstance(probe.torch, TorchBuild):
        return None
    return probe, probe.torch


def _error_text(comp: CompanionBuild) -> str:
    """What went wrong, in the package's and the loader's words ("" when it works)."""
    if comp.status == "ok":
        return ""
    parts = [p for p in (comp.import_error, comp.extension_error, comp.detail) if p]
    return " | ".join(dict.fromkeys(parts)) or comp.status


def _fix(
    facts: DoctorFacts, comp: str, pair: CompanionPair | None, torch_version: str, cuda: str | None
) -> tuple[str, str]:
    """(fix sentence, command) installing ``pair`` for torch's build in this environment."""
    build = f"CUDA {cuda}" if cuda else "CPU"
    if pair is None:
        return (
            f"Install the {comp} release built for torch {torch_version} ({build} build); the "
            f"knowledge base has no pairing for it (see https://github.com/pytorch/vision"
            f"#installation and https://docs.pytorch.org/audio/main/installation.html).",
            "",
        )
    env = probed_env(facts)
    abi = " (built on torch's stable ABI)" if pair.stable_abi else ""
    if env.kind == "conda" and not pip_owned(installer(facts), comp):
        command = conda_companion_command(facts, env.prefix, [conda_spec(pair, cuda)])
        return (
            f"This is a conda environment: install conda-forge's {comp} {pair.release}{abi} "
            f"{build} build beside its pytorch: {command}",
            command,
        )
    command = install_companion_command(installer(facts), pair, torch_version)
    return (
        f"Install {comp} {pair.release}{abi}, the release for torch {torch_version}, in the "
        f"{build} build from torch's own index: {command}",
        command,
    )


def _has_gpu(facts: DoctorFacts) -> bool:
    return any(not g.lost and isinstance(g.compute_capability, tuple) for g in facts.gpus)


def check_companion(facts: DoctorFacts, name: str) -> list[Finding]:
    """The finding of companion ``name`` (at most one), see the module docstring."""
    found = _torch(facts)
    if found is None:
        return []
    probe, build = found
    comp = getattr(build, name)
    if not isinstance(comp, CompanionBuild):
        return []
    torch_version = probe.version if isinstance(probe.version, str) else ""
    comp_version = comp.version if isinstance(comp.version, str) else ""
    torch_cuda = build.cuda if isinstance(build.cuda, str) else None
    torch_cpu = torch_cuda is None and isinstance(build.hip, Missing)
    comp_cuda = comp.cuda if isinstance(comp.cuda, str) else None
    comp_cpu = isinstance(comp.cuda, Missing) and comp.cuda.reason == "cpu_build"
    error = _error_text(comp)
    verdict = pair_fits(name, comp_version, torch_version)
    fix, command = _fix(facts, name, verdict.expected, torch_version, torch_cuda)
    details = {
        "companion": name,
        "version": comp_version or None,
        "status": comp.status,
        "cuda": comp_cuda,
        "torch_version": torch_version,
        "torch_cuda": torch_cuda,
        "expected_release": verdict.expected.release if verdict.expected else None,
        "torch_requirement": comp.torch_requirement
        if isinstance(comp.torch_requirement, str)
        else None,
        "error": error or None,
        "source": verdict.expected.source if verdict.expected else None,
    }
    said = f" It fails: {error}." if error else ""
    torch_build = f"CUDA {torch_cuda}" if torch_cuda else "CPU"
    pinned = (
        f" (its wheel requires torch {comp.torch_requirement})"
        if isinstance(comp.torch_requirement, str)
        else ""
    )

    def finding(kind: str, severity: Severity, title: str, message: str) -> list[Finding]:
        return [Finding(f"{name}.{kind}", severity, title, message + said, fix, details, command)]

    if verdict.fits is False and verdict.expected is not None:
        return finding(
            "release_mismatch",
            "error",
            f"{name} {comp_version} does not go with torch {torch_version}",
            f"{verdict.reason}{pinned}. Its compiled extension is linked against another torch "
            f"release, so its operators fail to load.",
        )
    if torch_cuda is not None and comp_cpu:
        gpu = _has_gpu(facts)
        return finding(
            "cpu_build_with_cuda_torch",
            "error" if gpu or error else "warning",
            f"{name} {comp_version} is a CPU build beside torch's CUDA {torch_cuda} build",
            f"{name} {comp_version} was built without CUDA, torch {torch_version} for CUDA "
            f"{torch_cuda}: {name}'s operators fail on CUDA tensors"
            + ("" if gpu else " (this machine has no usable NVIDIA GPU, so only on the CPU today)")
            + ".",
        )
    if torch_cpu and comp_cuda is not None:
        return finding(
            "cuda_build_with_cpu_torch",
            "error",
            f"{name} {comp_version} is a CUDA {comp_cuda} build beside torch's CPU build",
            f"{name} {comp_version} was built for CUDA {comp_cuda}, torch {torch_version} without "
            f"CUDA: its compiled extension needs torch's CUDA libraries, which the CPU torch does "
            "not have, so its operators do not load.",
        )
    if torch_cuda is not None and comp_cuda is not None and comp_cuda != torch_cuda:
        major = comp_cuda.split(".")[0] != torch_cuda.split(".")[0]
        return finding(
            "cuda_mismatch",
            "error" if major or error else "warning",
            f"{name} {comp_version} was built for CUDA {comp_cuda}, torch for CUDA {torch_cuda}",
            f"{name} {comp_version} was built for CUDA {comp_cuda}, torch {torch_version} for "
            f"{torch_build}"
            + (
                f": {name} refuses CUDA builds of another major version"
                if major
                else ": the same major version loads, but the builds are not the pair PyTorch "
                "ships and tests"
            )
            + ".",
        )
    if comp.status != "ok":
        where = comp.extension_file if isinstance(comp.extension_file, str) else "its extension"
        return finding(
            "extension_failed",
            "error",
            f"{name} {comp_version} does not load",
            f"{name} {comp_version} goes with torch {torch_version} ({torch_build}), but its "
            f"import or compiled extension ({where}) does not load ({comp.status}), so its "
            "operators are missing.",
        )
    return []


def check_companions(facts: DoctorFacts) -> list[Finding]:
    """``torchvision.*`` and ``torchaudio.*``: each companion against torch and the pairs table."""
    found: list[Finding] = []
    for name in COMPANIONS:
        found.extend(check_companion(facts, name))
    return found


#: The catalogue entries of these checks: ``{"torchvision.release_mismatch": "error", ...}``.
CHECK_IDS: dict[str, Severity] = {
    f"{name}.{kind}": severity for name in COMPANIONS for kind, severity in KINDS.items()
}
