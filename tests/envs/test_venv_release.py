"""Which PyTorch release a venv lock pins, and why (follow-up to issues 12 and 16).

The data knows torch 2.15 without its CUDA builds (``variants: {}``): a CPU lock takes 2.15, a
CUDA lock 2.14 (the newest whose builds' arch lists are known), and the lock says so.
``--torch-version X.Y`` picks the release: refused (exit 2, with the releases that fit) where
the data shows no build for the variant, the GPUs or the Python; allowed past the data, with
the newer-than-data note and the variant chosen by the rules of a known release.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from dlsetup.compat.frameworks import (
    torch_releases,
    torch_rules_release,
    torch_variant_facts,
    torch_variants,
)
from dlsetup.compat.recommend import recommend_torch
from dlsetup.envs.variant import VariantChoice, choose_variant
from dlsetup.envs.venv.lock import choose_torch_index
from dlsetup.errors import InputError, NoFittingBuildError
from dlsetup.output import load_schema
from tests.support.fake_nvml import no_library_env
from tests.support.proc import run_cli
from tests.support.torch_index import TorchIndex

NEWEST = torch_releases()[-1]  # 2.15 today: known from PyPI, its CUDA builds not
RULES = torch_rules_release() or "none"  # 2.14 today
PAST = f"{NEWEST.split('.')[0]}.{int(NEWEST.split('.')[1]) + 1}"  # 2.16: newer than the data


def cuda(version: str = "13.0", *archs: str) -> VariantChoice:
    return choose_variant(
        "cuda", cuda=version, platforms=("linux-64",), has_variant=lambda v: True, gpu_arch=archs
    )


def cpu() -> VariantChoice:
    return choose_variant("cpu", cuda=None, platforms=("linux-64",), has_variant=lambda v: True)


def test_the_data_state_these_tests_rely_on() -> None:
    assert not torch_variant_facts(NEWEST) and torch_variant_facts(RULES)


# --- the default choice explains itself ----------------------------------------------------------

EXPLAINED = (
    f"torch {NEWEST} is the newest release the data knows; its CUDA builds are not in the data "
    f"yet, so a CUDA lock takes {RULES}, the newest whose builds' arch lists are known"
)


def test_a_cpu_lock_takes_the_newest_release_and_says_why_a_cuda_lock_would_not() -> None:
    pick = choose_torch_index(cpu(), "3.12")
    assert (pick.variant, pick.release) == ("cpu", NEWEST)
    assert pick.release_note == EXPLAINED


def test_a_cuda_lock_takes_the_newest_release_with_arch_lists_and_says_why() -> None:
    pick = choose_torch_index(cuda("13.0", "8.9"), "3.12")
    assert (pick.variant, pick.release) == ("cu130", RULES)
    assert pick.release_note == EXPLAINED


def test_silent_when_the_newest_release_for_the_python_has_its_cuda_facts() -> None:
    # 2.15 needs Python >= 3.11: for 3.10 the newest release is 2.14, whose builds are known
    assert choose_torch_index(cpu(), "3.10").release_note == ""
    assert choose_torch_index(cuda("13.0", "8.9"), "3.10").release_note == ""


# --- --torch-version -----------------------------------------------------------------------------


def test_a_known_release_with_a_fitting_build_is_locked() -> None:
    pick = choose_torch_index(cuda("13.0", "8.9"), "3.12", "2.13")
    assert (pick.variant, pick.release) == ("cu130", "2.13")
    assert pick.release_note == "--torch-version 2.13"
    assert choose_torch_index(cpu(), "3.12", "2.13").release == "2.13"


def test_a_release_without_a_build_for_the_gpus_is_refused_with_the_choices() -> None:
    # Blackwell (12.0) is in no arch list of 2.0
    with pytest.raises(NoFittingBuildError) as caught:
        choose_torch_index(cuda("13.0", "12.0"), "3.10", "2.0")
    assert (
        "no CUDA wheel of PyTorch 2.0 in dlsetup's data runs on CUDA 13.0" in caught.value.message
    )
    fitting = [
        r
        for r in torch_releases()
        if recommend_torch("13.0", [(12, 0)], "3.10", None, releases=(r,))
    ]
    assert fitting and "2.0" not in fitting
    assert caught.value.fix == f"choose one of: {', '.join(fitting)} (or leave --torch-version out)"


def test_an_older_release_with_unknown_arch_lists_takes_its_newest_variant_the_driver_runs() -> (
    None
):
    # the data names 2.6's variants (cu118, cu124, cu126) without their arch lists
    assert not torch_variant_facts("2.6") and "cu126" in torch_variants("2.6")
    pick = choose_torch_index(cuda("12.4", "8.6"), "3.12", "2.6")
    assert (pick.variant, pick.release) == ("cu124", "2.6")
    assert "the GPUs were not checked against them" in pick.release_note


def test_a_release_outside_its_python_range_is_refused() -> None:
    with pytest.raises(
        NoFittingBuildError, match=r"PyTorch 2\.13 supports Python 3\.10-3\.14, not 3\.15"
    ):
        choose_torch_index(cpu(), "3.15", "2.13")


def test_an_older_release_the_data_does_not_know_is_refused() -> None:
    with pytest.raises(NoFittingBuildError, match="knows no such PyTorch release") as caught:
        choose_torch_index(cpu(), "3.12", "1.99")
    assert NEWEST in (caught.value.fix or "")


@pytest.mark.parametrize("text", ["2", "2.x", "2.14.1", ""])
def test_a_malformed_release_is_refused(text: str) -> None:
    with pytest.raises(InputError, match=r"is not X\.Y"):
        choose_torch_index(cpu(), "3.12", text)


def test_a_cpu_release_newer_than_the_data_is_allowed_with_the_note() -> None:
    pick = choose_torch_index(cpu(), "3.12", PAST)
    assert (pick.variant, pick.release) == ("cpu", PAST)
    assert f"dlsetup's compatibility data ends at PyTorch {NEWEST}" in pick.release_note
    assert "its Python range is not checked" in pick.release_note


@pytest.mark.parametrize("release", [NEWEST, PAST])
def test_a_cuda_release_without_cuda_facts_takes_the_variant_by_the_known_rules(
    release: str,
) -> None:
    pick = choose_torch_index(cuda("13.0", "8.9"), "3.12", release)
    rules = recommend_torch("13.0", [(8, 9)], "3.12", releases=(RULES,))
    assert rules is not None
    assert (pick.variant, pick.release) == (rules.variant, release)
    assert f"wheel variant {rules.variant} is chosen by the rules of {RULES}" in pick.release_note
    assert f"{release}'s own arch list is not checked" in pick.release_note
    assert pick.passed_over == ()  # no facts about the release's own variants are invented
    if release == PAST:
        assert f"dlsetup's compatibility data ends at PyTorch {NEWEST}" in pick.release_note


def test_a_cuda_release_past_the_data_is_refused_where_the_known_rules_fit_no_gpu() -> None:
    with pytest.raises(NoFittingBuildError, match="by the rules of"):
        choose_torch_index(cuda("13.0", "3.5"), "3.12", PAST)  # Kepler: in no CUDA 13 arch list


# --- end to end: header, --json, exit codes ------------------------------------------------------


def lock(
    tmp_path: Path, index: TorchIndex, env: dict[str, str], *args: str
) -> tuple[int, str, str]:
    proc = run_cli(
        "lock", "pytorch", "--backend", "venv", "--torch-index-url", index.torch_url,
        "--index-url", index.pypi_url, "--platform", "linux-64", "--output", str(tmp_path),
        "--python-version", "3.12", *args, env=env,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.slow
def test_the_lock_header_and_json_carry_the_release_note(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {**no_library_env(tmp_path / "no-nvml"), **isolated_dirs}
    code, out, err = lock(tmp_path, torch_index, env, "--variant", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    jsonschema.validate(doc, load_schema("dlsetup.venv-lock"))
    assert doc["data"]["torch"]["release_note"] == EXPLAINED
    text = (tmp_path / "pylock.pytorch-cpu.toml").read_text()
    assert f"#   Release: {EXPLAINED}.\n" in text

    code, out, err = lock(tmp_path, torch_index, env, "--variant", "cpu", "--torch-version", PAST,
                          "--force", "--json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)["data"]
    assert data["torch"]["release"] == PAST
    versions = {p["name"]: p["version"] for p in data["platforms"][0]["packages"]}
    assert versions["torch"] == f"{PAST}.0+cpu"
    text = (tmp_path / "pylock.pytorch-cpu.toml").read_text()
    assert f"#   Release: --torch-version {PAST}; dlsetup's compatibility data ends at" in text


def test_a_refused_release_exits_2_with_the_choices(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {**no_library_env(tmp_path / "no-nvml"), **isolated_dirs}
    # a Tesla K80 (3.7) on a CUDA 12.6 driver: 2.14's cu126 dropped it, its cu130 needs CUDA 13
    code, _, err = lock(tmp_path, torch_index, env, "--cuda", "12.6", "--gpu-arch", "3.7",
                        "--torch-version", "2.14")  # fmt: skip
    assert code == 2, err
    assert "--torch-version 2.14: no CUDA wheel of PyTorch 2.14 in dlsetup's data runs" in err
    assert "Fix: choose one of: 2.2, 2.3, 2.4, 2.7 (or leave --torch-version out)" in err
    assert not list(tmp_path.glob("pylock*"))
    proc = run_cli("lock", "pytorch", "--torch-version", "2.14", "--output", str(tmp_path), env=env)
    assert proc.returncode == 2 and "--torch-version only applies to --backend venv" in proc.stderr
