"""doctor's companion checks: the pairs table, the messages naming both sides, fixes in pip's and
conda's words, and the real torchvision 0.28.0 (a CUDA build) beside the CPU torch 2.13 (network)."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

from dlsetup.checks import evaluate
from dlsetup.checks.finding import Finding
from dlsetup.compat.companions import companion_release, pair_fits
from dlsetup.probes.frameworks import FrameworkRun
from tests.doctor.test_checks import (
    LOADER,
    NMS_MISSING,
    companion,
    facts,
    nvidia,
    with_companions,
)
from tests.smoke.companion_standins import real_torchvision, torchvision_standin


def only(found: tuple[Finding, ...], prefix: str) -> Finding:
    (f,) = [f for f in found if f.id.startswith(prefix)]
    return f


def test_pairs_table_follows_the_sources_and_the_stable_abi() -> None:
    assert [companion_release("torchvision", f"2.{n}.0") for n in (0, 13, 14, 15)] == [
        companion_release("torchvision", "2.0.1"),
        companion_release("torchvision", "2.13.0+cpu"),
        companion_release("torchvision", "2.14.1"),
        companion_release("torchvision", "2.15.0"),
    ]
    releases = [
        getattr(companion_release("torchvision", f"2.{n}.0"), "release", None)
        for n in (0, 6, 13, 14, 15)
    ]
    assert releases == ["0.15", "0.21", "0.28", "0.29", "0.29"]  # 2.15: 0.29's stable ABI
    audio = [
        getattr(companion_release("torchaudio", f"2.{n}.0"), "release", None)
        for n in (0, 9, 11, 12, 15)
    ]
    assert audio == ["2.0", "2.9", "2.11", "2.11", "2.11"]  # PyPI stops at 2.11
    assert companion_release("torchvision", "1.13.1") is None
    assert pair_fits("torchaudio", "2.11.0", "2.13.0").fits is True  # stable ABI, later torch
    assert pair_fits("torchaudio", "2.9.0", "2.13.0").fits is False
    assert pair_fits("torchvision", "0.29.1", "2.13.0").fits is False  # needs 2.14 or later
    assert pair_fits("torchvision", "0.29.1", "2.15.0").fits is True
    assert pair_fits("torchvision", "0.28.0", "2.14.1").fits is False  # one release only
    assert pair_fits("torchvision", "0.14.0", "1.13.0").fits is None  # not known: silent


def test_release_mismatch_names_both_versions_and_pip_installs_the_pair_from_torchs_index() -> None:
    f = only(
        evaluate(with_companions(torchvision=companion("torchvision", "0.20.0+cu124"))),
        "torchvision.",
    )
    assert f.id == "torchvision.release_mismatch" and f.severity == "error"
    assert "torchvision 0.20.0+cu124 was built for torch 2.5 only" in f.message
    assert "torch 2.6.0+cu124 pairs with torchvision 0.21" in f.message
    assert f.command == (
        "/env/bin/python -m pip install --force-reinstall --no-deps 'torchvision==0.21.*' "
        "--index-url https://download.pytorch.org/whl/cu124"
    )
    assert f.command in f.fix
    assert "vision" in f.details["source"]


def test_torchaudio_past_2_11_pins_the_stable_abi_release() -> None:
    found = evaluate(
        with_companions("2.13.0+cu130", "13.0", torchaudio=companion("torchaudio", "2.9.0+cu130"))
    )
    f = only(found, "torchaudio.")
    assert f.id == "torchaudio.release_mismatch"
    assert "'torchaudio==2.11.*' --index-url https://download.pytorch.org/whl/cu130" in f.command
    healthy = with_companions(
        "2.13.0+cu130", "13.0", torchaudio=companion("torchaudio", "2.11.0+cu130")
    )
    assert not [g for g in evaluate(healthy) if g.id.startswith("torchaudio.")]


def test_cuda_companion_beside_cpu_torch_carries_the_real_error_and_the_cpu_wheel() -> None:
    broken = companion("torchvision", "0.28.0+cu130", "import_failed", NMS_MISSING)
    broken = dataclasses.replace(broken, extension_error=LOADER, torch_requirement="==2.13.0")
    f = only(evaluate(with_companions("2.13.0+cpu", None, torchvision=broken)), "torchvision.")
    assert f.id == "torchvision.cuda_build_with_cpu_torch"
    assert "built for CUDA 13.0, torch 2.13.0+cpu without CUDA" in f.message
    assert NMS_MISSING in f.message and "libc10_cuda.so" in f.message
    assert f.command.endswith(
        "'torchvision==0.28.*' --index-url https://download.pytorch.org/whl/cpu"
    )


def test_cpu_companion_with_cuda_torch_is_a_warning_without_a_gpu() -> None:
    case = with_companions(torchvision=companion("torchvision", "0.21.0+cpu"))
    assert only(evaluate(case), "torchvision.").severity == "error"
    no_gpu = dataclasses.replace(case, nvidia=nvidia("no_library"))
    f = only(evaluate(no_gpu), "torchvision.")
    assert (f.id, f.severity) == ("torchvision.cpu_build_with_cuda_torch", "warning")


def test_cuda_minor_mismatch_that_loads_is_a_warning_and_a_major_one_an_error() -> None:
    minor = with_companions(torchvision=companion("torchvision", "0.21.0+cu126"))
    f = only(evaluate(minor), "torchvision.")
    assert (f.id, f.severity) == ("torchvision.cuda_mismatch", "warning")
    assert "built for CUDA 12.6, torch 2.6.0+cu124 for CUDA 12.4" in f.message
    major = with_companions(torchvision=companion("torchvision", "0.21.0+cu118"))
    assert only(evaluate(major), "torchvision.").severity == "error"


def test_conda_environment_gets_a_conda_forge_spec_for_torchs_build(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "bin").mkdir()
    case = with_companions(
        "2.13.0", "12.9", torchvision=companion("torchvision", "0.27.0+cu129")
    )  # conda-forge's torch has no local tag
    fw = dataclasses.replace(case.frameworks, python_executable=str(prefix / "bin" / "python"))  # type: ignore[type-var]
    case = dataclasses.replace(case, frameworks=fw)
    f = only(evaluate(case), "torchvision.")
    assert f.id == "torchvision.release_mismatch"
    assert f.command == (
        f'conda install --prefix {prefix} -c conda-forge "torchvision=0.28.*=*cuda129*"'
    )
    assert f.fix.startswith("This is a conda environment")


def test_extension_failure_with_the_right_pair_reinstalls_it() -> None:
    broken = companion("torchaudio", "2.6.0+cu124", "extension_failed", LOADER)
    f = only(evaluate(with_companions(torchaudio=broken)), "torchaudio.")
    assert f.id == "torchaudio.extension_failed"
    assert LOADER in f.message
    assert "'torchaudio==2.6.*' --index-url https://download.pytorch.org/whl/cu124" in f.command


def test_healthy_pairs_and_no_companions_are_silent() -> None:
    assert not [f for f in evaluate(facts()) if f.id.startswith(("torchvision.", "torchaudio."))]
    both = with_companions(
        torchvision=companion("torchvision", "0.21.0+cu124"),
        torchaudio=companion("torchaudio", "2.6.0+cu124"),
    )
    assert not [f for f in evaluate(both) if f.id.startswith(("torchvision.", "torchaudio."))]


def _doctor_findings(pythonpath: Path) -> tuple[Finding, ...]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pythonpath)
    env["TORCH_DEVICE_BACKEND_AUTOLOAD"] = "0"
    fw = FrameworkRun(sys.executable, 60, ("torch",), env=env).start().collect()
    return evaluate(dataclasses.replace(facts(nvidia=nvidia("no_library")), frameworks=fw))


@pytest.mark.slow
@pytest.mark.torch
def test_probed_wrong_release_standin_is_named_with_its_fix(tmp_path: Path) -> None:
    """The real probe over a stand-in torchvision 0.27 beside the venv's torch 2.13."""
    torchvision_standin(tmp_path, "op_missing", version="0.27.0+cpu")
    f = only(_doctor_findings(tmp_path), "torchvision.")
    assert f.id == "torchvision.release_mismatch"
    assert "torchvision 0.27.0+cpu was built for torch 2.12 only" in f.message
    assert "Could not load this library" in f.message  # the loader's own words
    assert "'torchvision==0.28.*' --index-url https://download.pytorch.org/whl/cpu" in f.command


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.network
def test_real_torchvision_0_28_beside_the_cpu_torch_2_13_is_named_with_the_cpu_wheel(
    tmp_path: Path,
) -> None:
    site = real_torchvision(tmp_path / "site")
    f = only(_doctor_findings(site), "torchvision.")
    assert f.id == "torchvision.cuda_build_with_cpu_torch"
    assert "torchvision 0.28.0+cu130 was built for CUDA 13.0" in f.message
    assert "cannot open shared object file" in f.message
    assert f.command.endswith(
        "-m pip install --force-reinstall --no-deps 'torchvision==0.28.*' "
        "--index-url https://download.pytorch.org/whl/cpu"
    )
