"""A framework release newer than the knowledge base: said once (knowledge.newer_release), judged
by the general rules (the build's own CUDA version and arch list), and never sent back to an older
release because the data ends there. Stand-in torch/TensorFlow one release past the data, run
through the real framework probe and ``dlsetup doctor --json`` against the fake NVML library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from packaging.version import Version

from dlsetup.compat import knowledge_base
from dlsetup.compat.frameworks import (
    newer_than_data,
    tf_releases,
    torch_releases,
    torch_rules_release,
)
from dlsetup.compat.recommend import recommend_tensorflow, recommend_torch
from dlsetup.output import load_schema
from tests.doctor.standins import tensorflow_standin, torch_standin
from tests.support.fake_nvml import SCENARIOS, nvml_env, subprocess_env
from tests.support.proc import run_cli

PY = sys.executable
SCHEMA = load_schema("dlsetup.doctor")
BLACKWELL = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120")
AMPERE = ("sm_75", "sm_80", "sm_86")


def beyond(framework: str) -> str:
    """One minor release past the newest the data knows (torch 2.16 while it knows 2.15)."""
    major, minor = (torch_releases() if framework == "torch" else tf_releases())[-1].split(".")
    return f"{major}.{int(minor) + 1}"


TORCH_NEW, TF_NEW = beyond("torch"), beyond("tensorflow")
TORCH_LAST, TF_LAST = torch_releases()[-1], tf_releases()[-1]
RULES = torch_rules_release()
REFRESHED = knowledge_base().refreshed


# -- the note -------------------------------------------------------------------------------------


def test_the_note_names_where_the_data_ends_its_date_and_the_rules_used() -> None:
    newer = newer_than_data("torch", f"{TORCH_NEW}.0+cu130")
    assert newer is not None
    assert newer.note == (
        f"dlsetup's compatibility data ends at PyTorch {TORCH_LAST}, {REFRESHED}; verdicts for "
        f"{TORCH_NEW} use the rules of {RULES}"
    )
    tf = newer_than_data("tensorflow", f"{TF_NEW}.1")
    assert tf is not None
    assert tf.note == (
        f"dlsetup's compatibility data ends at TensorFlow {TF_LAST}, {REFRESHED}; verdicts for "
        f"{TF_NEW} use the rules of {TF_LAST}"
    )
    assert newer_than_data("torch", f"{TORCH_NEW}.0.dev20270101+cu130") is not None  # nightly


def test_known_and_older_releases_get_no_note() -> None:
    assert newer_than_data("torch", f"{TORCH_LAST}.0") is None
    assert newer_than_data("torch", "2.6.0+cu124") is None
    assert newer_than_data("torch", "1.13.1") is None  # older than the data: not "newer"
    assert newer_than_data("tensorflow", f"{TF_LAST}.0") is None
    assert newer_than_data("torch", "not a version") is None


# -- fixes never go back a release because the data ends ------------------------------------------


def test_torch_fix_keeps_a_release_newer_than_the_data() -> None:
    known = recommend_torch("13.0", [(9, 0)], "3.12", "580.65.06")
    assert known is not None and known.release == RULES
    kept = recommend_torch("13.0", [(9, 0)], "3.12", "580.65.06", installed=f"{TORCH_NEW}.0+cpu")
    assert kept is not None
    assert kept.release == TORCH_NEW
    assert kept.command == (
        f"pip install torch=={TORCH_NEW}.* --index-url https://download.pytorch.org/whl/"
        f"{known.variant}"
    )
    assert kept.note.startswith(known.note)  # nothing claimed of the new release's build
    assert f"chosen by the rules of {RULES}" in kept.note


def test_torch_fix_still_goes_back_when_the_driver_is_the_reason() -> None:
    # A CUDA 11.4 driver runs no wheel of the newest release with variant facts: the fix names an
    # older release for the driver's sake, not the data's.
    pick = recommend_torch("11.4", [(7, 0)], "3.10", "470.82.01", installed=f"{TORCH_NEW}.0")
    assert pick is not None and pick.release != TORCH_NEW
    assert pick.release != RULES


def test_a_known_installed_release_is_not_promoted() -> None:
    pick = recommend_torch("13.0", [(9, 0)], "3.12", "580.65.06", installed="2.6.0+cu124")
    assert pick is not None and pick.release == RULES


def test_tensorflow_fix_keeps_a_release_newer_than_the_data() -> None:
    known = recommend_tensorflow("12.8", "3.12", "570.124.04")
    assert known is not None and known.release == TF_LAST
    kept = recommend_tensorflow("12.8", "3.12", "570.124.04", installed=f"{TF_NEW}.0")
    assert kept is not None
    assert kept.requirement == f"tensorflow[and-cuda]=={TF_NEW}.*"
    assert kept.note.startswith(known.note) and f"rules of {TF_LAST}" in kept.note


# -- doctor end to end, with stand-ins -------------------------------------------------------------


def found(data: dict[str, Any], check_id: str) -> list[dict[str, Any]]:
    return [f for f in data["findings"] if f["id"] == check_id]


def test_newer_torch_and_tensorflow_are_said_once_each_and_judged_by_the_general_rules(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    data = _doctor(
        fake_nvml_dir,
        tmp_path,
        "driver_535_cuda_12_2_one_h100",
        {"version": f"{TORCH_NEW}.0+cu130", "cuda": "13.0", "arch_list": BLACKWELL},
        {"version": f"{TF_NEW}.0", "cuda_version": "12.5"},
    )
    notes = found(data, "knowledge.newer_release")
    assert [n["details"]["framework"] for n in notes] == ["torch", "tensorflow"]  # once each
    torch_note = notes[0]
    assert torch_note["severity"] == "info"
    assert torch_note["message"].startswith(
        f"dlsetup's compatibility data ends at PyTorch {TORCH_LAST}, {REFRESHED}; verdicts for "
        f"{TORCH_NEW} use the rules of {RULES}. Nothing the data does not know is assumed: the "
        "driver is checked against the build's own CUDA 13.0 and each GPU against the arch list "
        "the build reports (sm_75, sm_80, sm_86, sm_90, sm_100, sm_120, compute_120)"
    )
    # The general rules still judge the unknown release: CUDA 13.0 build, CUDA 12.2 driver.
    too_old = [
        f for f in found(data, "driver.too_old_for_build") if f["details"]["framework"] == "torch"
    ]
    assert len(too_old) == 1
    assert f"torch=={TORCH_NEW}.*" in too_old[0]["fix"]  # not back to the data's release
    assert f"torch=={RULES}.*" not in too_old[0]["fix"]
    # TF 12.5 on a 12.2 driver: minor-version compatibility, by the driver rule alone.
    assert [f["details"]["framework"] for f in found(data, "driver.minor_version_compat")] == [
        "tensorflow"
    ]
    assert not found(data, "python.unsupported_by_framework")  # no Python range invented
    assert not found(data, "gpu.arch_not_in_build")  # sm_90 is in the build's own list


def _doctor(
    fake_nvml_dir: Path,
    tmp_path: Path,
    scenario: str,
    torch_kw: dict[str, Any],
    tf_kw: dict[str, Any],
    **nvml: str,
) -> dict[str, Any]:
    torch_standin(tmp_path, **torch_kw)
    tensorflow_standin(tmp_path, **tf_kw)
    machine = {**SCENARIOS[scenario], **nvml}
    env = {**nvml_env(fake_nvml_dir, **machine), "PYTHONPATH": str(tmp_path)}
    proc = run_cli("doctor", "--json", env=subprocess_env(env), timeout=120)
    assert proc.stdout, proc.stderr
    document = json.loads(proc.stdout)
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    data: dict[str, Any] = document["data"]
    return data


def test_releases_the_data_knows_get_no_note(fake_nvml_dir: Path, tmp_path: Path) -> None:
    data = _doctor(
        fake_nvml_dir,
        tmp_path,
        "driver_535_cuda_12_2_one_h100",
        {"version": f"{TORCH_LAST}.0+cu130", "cuda": "13.0", "arch_list": BLACKWELL},
        {"version": f"{TF_LAST}.0", "cuda_version": "12.5"},
    )
    assert not found(data, "knowledge.newer_release")
    assert found(data, "driver.too_old_for_build")  # the same build, the same driver verdict


def test_the_gpu_verdict_of_a_newer_release_reads_the_builds_own_arch_list(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    # An H100 (9.0) on a CUDA 12.2 driver; the unknown release's CUDA 12.1 build either lacks
    # sm_90 in the arch list it reports, or has it.
    torch_kw = {"version": f"{TORCH_NEW}.0+cu121", "cuda": "12.1"}
    tf_kw = {"version": f"{TF_LAST}.0", "cuda_version": "12.5"}
    h100 = "driver_535_cuda_12_2_one_h100"
    lacking = _doctor(fake_nvml_dir, tmp_path / "a", h100, {**torch_kw, "arch_list": AMPERE}, tf_kw)
    arch = [
        f for f in found(lacking, "gpu.arch_not_in_build") if f["details"]["framework"] == "torch"
    ]
    assert len(arch) == 1
    assert arch[0]["details"]["arch_list"] == list(AMPERE)
    assert arch[0]["command"].startswith(f"{PY} -m pip install 'torch=={TORCH_NEW}.*' --index-url ")
    assert [n["details"]["framework"] for n in found(lacking, "knowledge.newer_release")] == [
        "torch"
    ]
    having = _doctor(
        fake_nvml_dir, tmp_path / "b", h100, {**torch_kw, "arch_list": BLACKWELL}, tf_kw
    )
    assert not [
        f for f in found(having, "gpu.arch_not_in_build") if f["details"]["framework"] == "torch"
    ]


def test_cpu_builds_newer_than_the_data_get_fixes_that_keep_their_release(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    data = _doctor(
        fake_nvml_dir,
        tmp_path,
        "driver_535_cuda_12_2_one_h100",
        {"version": f"{TORCH_NEW}.0+cpu", "cuda": None},
        {"version": f"{TF_NEW}.0", "cuda_version": None},
        driver="580.65.06",
        cuda="13000",
    )
    torch_fix = found(data, "torch.cpu_build_on_gpu_machine")[0]
    assert torch_fix["command"].startswith(
        f"{PY} -m pip install 'torch=={TORCH_NEW}.*' --index-url "
    )
    tf_fix = found(data, "tensorflow.cpu_build_on_gpu_machine")[0]
    assert f"tensorflow[and-cuda]=={TF_NEW}.*" in tf_fix["command"]
    notes = found(data, "knowledge.newer_release")
    assert len(notes) == 2
    assert (
        "it is a CPU build, so no driver or GPU verdict depends on the data" in notes[0]["message"]
    )


def test_cpu_builds_the_data_knows_get_its_newest_fitting_release(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    data = _doctor(
        fake_nvml_dir,
        tmp_path,
        "driver_535_cuda_12_2_one_h100",
        {"version": "2.6.0+cpu", "cuda": None},
        {"version": "2.17.0", "cuda_version": None},
        driver="580.65.06",
        cuda="13000",
    )
    torch_fix = found(data, "torch.cpu_build_on_gpu_machine")[0]
    assert torch_fix["command"].startswith(f"{PY} -m pip install 'torch=={RULES}.*' --index-url ")
    tf_fix = found(data, "tensorflow.cpu_build_on_gpu_machine")[0]
    assert f"tensorflow[and-cuda]=={TF_LAST}.*" in tf_fix["command"]
    assert not found(data, "knowledge.newer_release")


# -- lock: a solve that takes a release newer than the data's conda-forge lines -------------------


def test_lock_note_once_per_framework_for_a_release_past_the_lines() -> None:
    from dlsetup.compat.lines import newer_than_data_notes

    cf = knowledge_base().conda_forge.frameworks["pytorch"].release  # "2.13.0"
    major, minor = cf.split(".")[:2]
    newer = f"{major}.{int(minor) + 2}.0"
    notes = newer_than_data_notes(
        [("pytorch", newer), ("pytorch", newer), ("numpy", "9.0"), ("tensorflow", "2.19.1")]
    )
    assert notes == (
        f"dlsetup's compatibility data ends at conda-forge pytorch {major}.{minor}, {REFRESHED}; "
        f"verdicts for {major}.{int(minor) + 2} use the rules of {major}.{minor}",
    )
    assert newer_than_data_notes([("pytorch", cf), ("tensorflow", "2.19.1")]) == ()


def _pytorch_past_the_lines(version: str) -> list[Any]:
    """conda-forge-shaped pytorch builds of ``version`` for linux-64, Python 3.12."""
    from tests.envs.channel import Package

    pydeps = ["python >=3.12,<3.13.0a0", "python_abi 3.12.* *_cp312", "numpy >=1.23"]
    out = [
        Package("pytorch", version, "cpu_mkl_py312h0_100", "linux-64", 100, list(pydeps)),
    ]
    for cu, glibc in (("129", "2.17"), ("130", "2.28")):
        major, minor = cu[:-1], cu[-1]
        depends = [
            *pydeps,
            "__cuda",
            f"cuda-version >={major}.{minor},<{int(major) + 1}",
            f"__glibc >={glibc}",
        ]
        out.append(
            Package("pytorch", version, f"cuda{cu}_mkl_py312h0_300", "linux-64", 300, depends)
        )
    return out


def _lock(channel: str, out: Path, env_file: Path) -> dict[str, Any]:
    proc = run_cli(
        "lock", str(env_file), "--cuda", "12.9", "--gpu-arch", "6.1", "--platform", "linux-64",
        "--channel", channel, "--output", str(out), "--json",
        env=subprocess_env({"XDG_CACHE_HOME": str(out / "cache"),
                            "RATTLER_CACHE_DIR": str(out / "cache" / "rattler")}),
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    jsonschema.validate(document, load_schema("dlsetup.lock"))
    data: dict[str, Any] = document["data"]
    return data


def _lock_header(data: dict[str, Any]) -> str:
    """The comment block at the top of the conda-lock file."""
    text = Path(data["files"]["lock"]).read_text("utf-8")
    return "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))


@pytest.mark.slow
def test_a_lock_that_solves_to_a_pytorch_past_the_data_says_so_once(tmp_path: Path) -> None:
    from tests.envs.channel import build_channel

    cf = knowledge_base().conda_forge.frameworks["pytorch"].release
    major, minor = cf.split(".")[:2]
    newer = f"{major}.{int(minor) + 2}.0"
    env_file = tmp_path / "torch.yml"
    env_file.write_text("name: torch\ndependencies:\n  - python 3.12.*\n  - pytorch\n", "utf-8")
    with_newer = build_channel(tmp_path / "newer", _pytorch_past_the_lines(newer))
    data = _lock(with_newer, tmp_path / "a", env_file)
    [pytorch] = [p for p in data["platforms"][0]["packages"] if p["name"] == "pytorch"]
    assert (pytorch["version"], pytorch["build"]) == (newer, "cuda129_mkl_py312h0_300")
    note = (
        f"dlsetup's compatibility data ends at conda-forge pytorch {major}.{minor}, {REFRESHED}; "
        f"verdicts for {major}.{int(minor) + 2} use the rules of {major}.{minor}"
    )
    assert data["variant_reason"].endswith(f"; {note}")
    assert data["variant_reason"].count("compatibility data ends") == 1
    header = _lock_header(data)
    assert f"# Data: {note}." in header  # the lock file says it too, once
    assert header.count("compatibility data ends") == 1
    # Silent twin: the channel's newest pytorch is the release the lines were read at.
    plain = build_channel(tmp_path / "plain")
    data = _lock(plain, tmp_path / "b", env_file)
    [pytorch] = [p for p in data["platforms"][0]["packages"] if p["name"] == "pytorch"]
    assert pytorch["version"] == cf
    assert "compatibility data ends" not in data["variant_reason"]
    header = _lock_header(data)
    assert header.startswith("# dlsetup lock:") and "# Data:" not in header


def test_a_known_release_whose_variants_are_unknown_is_kept_by_fixes_too() -> None:
    """torch 2.15 is in the data from PyPI (Python range) without its CUDA variants (the wheel
    index could not be read): a fix keeps 2.15 and picks its variant by the rules of 2.14."""
    unknown = [k for k, r in knowledge_base().torch.releases.items() if not r.has_variant_facts]
    newest_unknown = max(unknown, key=lambda k: tuple(int(p) for p in k.split(".")), default=None)
    if newest_unknown is None or RULES is None or Version(newest_unknown) <= Version(RULES):
        pytest.skip("every release the data knows has its CUDA variants")
    assert newer_than_data("torch", f"{newest_unknown}.0") is None  # known: no note
    pick = recommend_torch("13.0", [(9, 0)], "3.12", "580.65.06", installed=f"{newest_unknown}.0")
    assert pick is not None and pick.release == newest_unknown
    assert f"dlsetup's data does not know {newest_unknown}'s CUDA variants" in pick.note
