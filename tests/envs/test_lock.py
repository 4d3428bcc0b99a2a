"""``dlsetup lock`` against the local conda channel: variants from the fake NVIDIA driver, explicit
virtual packages, plain-language unsatisfiable errors, and locks that conda-lock and rattler read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import psutil
import pytest
from click.testing import CliRunner

from dlsetup.cli import cli
from dlsetup.envs.conda import lock as lock_mod
from dlsetup.envs.location import host_platform
from dlsetup.output import load_schema
from tests.envs.lock_builders import lock_args
from tests.support.fake_nvml import nvml_env
from tests.support.proc import REPO, run_cli

CONDA_LOCK = REPO / ".venv" / "bin" / "conda-lock"


def lock_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["lock", *args])
    return result.exit_code, result.output


def read_back(lock: Path) -> tuple[Any, Any]:
    """Read a lock with conda-lock's own parser and with rattler; both must succeed."""
    import rattler
    from conda_lock.lockfile import parse_conda_lock_file

    return parse_conda_lock_file(lock), rattler.LockFile.from_path(lock)


def render_explicit(lock: Path, tmp_path: Path) -> dict[str, str]:
    """``conda-lock render -k explicit`` (the real executable); returns {platform: text}."""
    exe = str(CONDA_LOCK) if CONDA_LOCK.exists() else "conda-lock"
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [
            exe,
            "render",
            "-k",
            "explicit",
            "--filename-template",
            str(tmp_path / "explicit-{platform}.txt"),
            str(lock),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    return {
        p.stem.removeprefix("explicit-"): p.read_text() for p in tmp_path.glob("explicit-*.txt")
    }


@pytest.mark.slow
def test_auto_variant_with_a_cuda_12_4_driver_locks_a_cuda_build_solved_for_12_4(
    fake_nvml_dir: Path, channel_url: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {
        **nvml_env(fake_nvml_dir, driver="550.54.14", cuda="12040", gpu_count="1", cc="8.6"),
        **isolated_dirs,
    }
    proc = run_cli(*lock_args("pytorch", channel_url, tmp_path, variant=None), env=env)
    assert proc.returncode == 0, proc.stderr
    assert (
        "Locked pytorch-cuda (cuda: 1 NVIDIA GPU(s); driver 550.54.14 supports CUDA 12.4; "
        "the driver supports CUDA 12.4, and CUDA 13.0 builds need a CUDA 13 driver, so CUDA "
        "12.9 (through minor-version compatibility))" in proc.stdout.replace("\n", " ")
    ), proc.stdout
    lock = tmp_path / "pytorch-cuda.conda-lock.yml"
    text = lock.read_text()
    assert text.startswith("# dlsetup lock: target pytorch, variant cuda, solved for CUDA 12.4.\n")
    # linux-64 is this machine's platform: detected values, and __cuda from the (fake) driver
    header = text.split("\n")
    linux = next(line for line in header if line.startswith("#   linux-64: "))
    assert linux.startswith("#   linux-64: __unix=0 __linux=")
    assert linux.endswith(" __cuda=12.4")
    origin = (
        "detected on this machine: __unix __linux __glibc; default floors: __archspec"
        if host_platform() == "linux-64"
        else "default floors: __unix __linux __glibc __archspec"
    )
    assert header[header.index(linux) + 1] == (
        f"#     {origin}; from the NVIDIA driver (NVML): __cuda"
    )
    parsed, rattler_lock = read_back(lock)
    builds = {p.name: p.build for p in parsed.package}
    assert builds["pytorch"] == "cuda129_mkl_py312h0_300"
    assert builds["cuda-version"] == "h0_3"
    assert parsed.metadata.custom_metadata["dlsetup_cuda"] == "12.4"
    records = rattler_lock.default_environment().conda_repodata_records()
    assert sorted(records) == ["linux-64"]
    vp = (tmp_path / "pytorch-cuda.virtual-packages.yml").read_text()
    assert '      __cuda: "12.4"\n' in vp
    explicit = render_explicit(lock, tmp_path / "render")
    assert "/linux-64/pytorch-2.13.0-cuda129_mkl_py312h0_300.tar.bz2#" in explicit["linux-64"]


@pytest.mark.slow
def test_driver_470_cuda_11_4_with_only_cuda_12_builds_is_refused_before_the_solve(
    fake_nvml_dir: Path, channel_url: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {
        **nvml_env(fake_nvml_dir, driver="470.82.01", cuda="11040", gpu_count="1", cc="8.6"),
        **isolated_dirs,
    }
    proc = run_cli(*lock_args("pytorch", channel_url, tmp_path / "out", variant=None), env=env)
    # refused before the solve (the hardware-aware line choice), exit 2, the driver's fix first
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "Error: no conda-forge pytorch CUDA line for linux-64 fits: the driver supports CUDA "
        "11.4, and CUDA 13.0 builds need a CUDA 13 driver; the driver supports CUDA 11.4, and "
        "CUDA 12.9 builds need a CUDA 12 driver\n"
        "Fix: choose: update the NVIDIA driver to 575.51.03 or newer (CUDA 12.9); any driver >= "
        "525.60.13 runs CUDA 12.x builds whose GPUs have SASS; or --variant cpu (dlsetup lock "
        "pytorch --variant cpu)\n"
    )
    assert not (
        tmp_path / "out"
    ).exists()  # nothing written (the knowledge-base cache is elsewhere)


@pytest.mark.slow
def test_no_gpu_gives_the_cpu_build(
    fake_nvml_dir: Path, channel_url: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {**nvml_env(fake_nvml_dir, gpu_count="0"), **isolated_dirs}
    proc = run_cli(*lock_args("pytorch", channel_url, tmp_path, "--json", variant=None), env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, load_schema("dlsetup.lock"))
    data = doc["data"]
    assert (data["variant"], data["cuda"], data["variant_reason"]) == (
        "cpu",
        None,
        "the NVIDIA driver sees no GPU",
    )
    [linux] = data["platforms"]
    assert "__cuda=" not in " ".join(linux["virtual_packages"])
    assert {"name": "pytorch", "version": "2.13.0", "build": "cpu_mkl_py312h0_100"} in linux[
        "packages"
    ]
    lock = Path(data["files"]["lock"])
    parsed, _ = read_back(lock)
    assert parsed.metadata.custom_metadata["dlsetup_cuda"] == "none"
    explicit = render_explicit(lock, tmp_path / "render")
    assert "/linux-64/pytorch-2.13.0-cpu_mkl_py312h0_100.tar.bz2#" in explicit["linux-64"]


def test_osx_arm64_lock_picks_mps_and_has_no_cuda(channel_url: str, tmp_path: Path) -> None:
    code, out = lock_cli(
        "pytorch", "--platform", "osx-arm64", "--channel", channel_url, "--output", str(tmp_path)
    )
    assert code == 0, out
    assert out.startswith(
        "Locked pytorch-mps (mps: Apple silicon (osx-arm64): the Metal (MPS) backend) for osx-arm64"
    )
    parsed, _ = read_back(tmp_path / "pytorch-mps.conda-lock.yml")
    pytorch = next(p for p in parsed.package if p.name == "pytorch")
    assert (pytorch.platform, pytorch.build) == ("osx-arm64", "cpu_generic_py312h0_0")
    explicit = render_explicit(tmp_path / "pytorch-mps.conda-lock.yml", tmp_path)
    assert list(explicit) == ["osx-arm64"]
    assert (
        f"{channel_url}/osx-arm64/pytorch-2.13.0-cpu_generic_py312h0_0.tar.bz2#"
        in explicit["osx-arm64"]
    )


def test_all_platforms_cuda_lock_covers_where_cuda_exists_and_reads_back_everywhere(
    channel_url: str, tmp_path: Path
) -> None:
    code, out = lock_cli(
        "pytorch",
        "--variant",
        "cuda",
        "--cuda",
        "12.4",
        "--all-platforms",
        "--channel",
        channel_url,
        "--output",
        str(tmp_path),
    )
    assert code == 0, out
    lock = tmp_path / "pytorch-cuda.conda-lock.yml"
    parsed, rattler_lock = read_back(lock)
    assert parsed.metadata.platforms == ["linux-64", "linux-aarch64", "win-64"]
    builds = {(p.platform, p.name): p.build for p in parsed.package}
    assert builds[("linux-64", "pytorch")] == "cuda129_mkl_py312h0_300"
    assert builds[("linux-aarch64", "pytorch")] == "cuda129_generic_py312h0_200"
    assert builds[("win-64", "pytorch")] == "cuda128_mkl_py312h0_300"
    records = rattler_lock.default_environment().conda_repodata_records()
    assert sorted(records) == ["linux-64", "linux-aarch64", "win-64"]
    assert sorted(render_explicit(lock, tmp_path)) == ["linux-64", "linux-aarch64", "win-64"]


def test_all_platforms_cpu_lock_of_both_targets_covers_linux_only(
    channel_url: str, tmp_path: Path
) -> None:
    code, out = lock_cli(
        "both",
        "--variant",
        "cpu",
        "--all-platforms",
        "--channel",
        channel_url,
        "--output",
        str(tmp_path),
        "--json",
    )
    assert code == 0, out
    doc = json.loads(out)
    jsonschema.validate(doc, load_schema("dlsetup.lock"))
    assert [p["platform"] for p in doc["data"]["platforms"]] == ["linux-64", "linux-aarch64"]
    parsed, _ = read_back(tmp_path / "both-cpu.conda-lock.yml")
    rendered = render_explicit(tmp_path / "both-cpu.conda-lock.yml", tmp_path / "r")
    assert sorted(rendered) == ["linux-64", "linux-aarch64"]
    assert {p.name for p in parsed.package} >= {
        "pytorch",
        "tensorflow",
        "jupyter",
        "ipykernel",
        "numpy",
    }


def test_content_hash_is_the_one_conda_lock_computes_for_the_rendered_file(
    channel_url: str, tmp_path: Path
) -> None:
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.src_parser import make_lock_spec
    from conda_lock.virtual_package import virtual_package_repo_from_specification

    from dlsetup.envs.conda.lock import pypi_mapping_path

    code, out = lock_cli(
        "tensorflow",
        "--variant",
        "cuda",
        "--cuda",
        "12.8",
        "--platform",
        "linux-64",
        "--channel",
        channel_url,
        "--output",
        str(tmp_path),
    )
    assert code == 0, out
    parsed, _ = read_back(tmp_path / "tensorflow-cuda.conda-lock.yml")
    rendered = render_explicit(tmp_path / "tensorflow-cuda.conda-lock.yml", tmp_path / "r")
    assert "/linux-64/tensorflow-2.19.1-cuda128py312h0_200.tar.bz2#" in rendered["linux-64"]
    spec = make_lock_spec(
        src_files=[tmp_path / "tensorflow-cuda.environment.yml"],
        mapping_url=str(pypi_mapping_path()),
    )
    vpr = virtual_package_repo_from_specification(tmp_path / "tensorflow-cuda.virtual-packages.yml")
    assert parsed.metadata.content_hash == compute_content_hashes(spec, vpr)


def test_existing_lock_is_not_replaced_without_force(channel_url: str, tmp_path: Path) -> None:
    args = (
        "pytorch",
        "--variant",
        "cpu",
        "--platform",
        "linux-64",
        "--channel",
        channel_url,
        "--output",
        str(tmp_path),
    )
    assert lock_cli(*args)[0] == 0
    env_file = tmp_path / "pytorch-cpu.environment.yml"
    env_file.write_text("# mine\n")
    code, out = lock_cli(*args)
    assert code == 2
    assert f"Error: {env_file} already exists; it was left unchanged\n" in out
    assert env_file.read_text() == "# mine\n"
    assert lock_cli(*args, "--force")[0] == 0
    assert env_file.read_text() != "# mine\n"


def test_unknown_target_lists_the_valid_choices() -> None:
    code, out = lock_cli("keras")
    assert code == 2
    assert (
        "Error: Invalid value for 'TARGET': 'keras' is not one of 'pytorch', 'tensorflow', 'both' "
        "(or the path of an environment .yml file)." in out
    )


def test_unknown_platform_lists_the_valid_choices() -> None:
    code, out = lock_cli("pytorch", "--platform", "linux-ppc64le")
    assert code == 2
    assert (
        "Error: Invalid value for '--platform': 'linux-ppc64le' is not one of 'linux-64', 'linux-aarch64', 'osx-64', 'osx-arm64', 'win-64'."
        in out
    )


def test_tensorflow_cuda_on_win_64_says_where_the_variant_exists(
    channel_url: str, tmp_path: Path
) -> None:
    code, out = lock_cli(
        "tensorflow",
        "--variant",
        "cuda",
        "--cuda",
        "12.4",
        "--platform",
        "win-64",
        "--channel",
        channel_url,
        "--output",
        str(tmp_path),
    )
    assert code == 2
    assert (
        "Error: tensorflow has no cuda variant for win-64; the cuda variant exists for: linux-64\n"
        in out
    )


def test_malformed_user_environment_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "mine.yml"
    bad.write_text("name: mine\ndependencies:\n  - numpy\n  - {npm: [left-pad]}\n")
    code, out = lock_cli(
        str(bad), "--variant", "cpu", "--platform", "linux-64", "--output", str(tmp_path)
    )
    assert code == 2
    assert (
        f"Error: malformed environment file {bad}, line 4: a mapping {{npm}} in dependencies: "
        "the only one conda knows is a 'pip:' section (- pip: [requirement, ...])\n" in out
    )


def test_package_missing_from_the_channel_is_named(channel_url: str, tmp_path: Path) -> None:
    mine = tmp_path / "mine.yml"
    mine.write_text(
        "name: mine\nchannels:\n  - conda-forge\ndependencies:\n  - python 3.12.*\n  - jax\n"
    )
    code, out = lock_cli(
        str(mine),
        "--variant",
        "cpu",
        "--platform",
        "linux-64",
        "--channel",
        channel_url,
        "--output",
        str(tmp_path / "o"),
    )
    assert code == 4
    assert f"Error: no package on {channel_url} matches jax for linux-64\n" in out


def test_conda_lock_engine_without_a_conda_executable_fails_at_once(
    channel_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("CONDA_EXE", raising=False)
    code, out = lock_cli(
        "pytorch",
        "--variant",
        "cpu",
        "--platform",
        "linux-64",
        "--engine",
        "conda-lock",
        "--channel",
        channel_url,
        "--output",
        str(tmp_path),
    )
    assert code == 3
    assert (
        "Error: --engine conda-lock needs a conda, mamba or micromamba executable, and none is on PATH (nor $CONDA_EXE)\n"
        in out
    )
    assert not (tmp_path / "pytorch-cpu.conda-lock.yml").exists()


def test_cuda_13_driver_gets_cuda_13_pytorch_alone_and_cuda_12_builds_beside_tensorflow(
    channel_url: str, tmp_path: Path
) -> None:
    # conda-forge's TensorFlow CUDA builds are 12.8 only: a CUDA 13 driver runs them (backward
    # compatibility), so the pin must be an upper bound, not the driver's major family
    for target in ("pytorch", "both"):
        code, out = lock_cli(
            target, "--variant", "cuda", "--cuda", "13.0", "--platform", "linux-64",
            "--channel", channel_url, "--output", str(tmp_path),
        )  # fmt: skip
        assert code == 0, out
    pytorch, _ = read_back(tmp_path / "pytorch-cuda.conda-lock.yml")
    both, _ = read_back(tmp_path / "both-cuda.conda-lock.yml")
    assert {p.name: p.build for p in pytorch.package}["pytorch"] == "cuda130_mkl_py312h0_300"
    builds = {p.name: (p.version, p.build) for p in both.package}
    assert builds["pytorch"] == ("2.13.0", "cuda129_mkl_py312h0_300")
    assert builds["tensorflow"] == ("2.19.1", "cuda128py312h0_200")
    assert builds["cuda-version"] == ("12.9", "h0_3")
    assert "  - cuda-version >=12.9,<13\n" in (tmp_path / "both-cuda.environment.yml").read_text()


@pytest.mark.slow
def test_conda_lock_solve_past_its_timeout_is_a_solve_error_and_ends_the_solver(
    channel_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pid_file = tmp_path / "solver.pid"
    solver = bin_dir / "micromamba"  # stands in for a solver that never answers
    solver.write_text(f"#!/bin/sh\necho $$ >> {pid_file}\nexec sleep 600\n")
    solver.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.setattr(lock_mod, "CONDA_LOCK_TIMEOUT_S", 8)
    code, out = lock_cli(
        "pytorch",
        "--variant",
        "cpu",
        "--platform",
        "linux-64",
        "--engine",
        "conda-lock",
        "--channel",
        channel_url,
        "--output",
        str(tmp_path),
    )
    assert code == 4
    assert f"Error: conda-lock's solve did not finish within 8 s using {solver}\n" in out
    assert not (tmp_path / "pytorch-cpu.conda-lock.yml").exists()
    for pid in (int(line) for line in pid_file.read_text().split()):
        deadline = time.monotonic() + 10
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the solver conda-lock started outlived the timeout"
            time.sleep(0.05)
