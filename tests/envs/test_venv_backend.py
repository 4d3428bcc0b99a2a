"""Issue 12: ``--backend venv`` locks into a PEP 751 pylock.toml with uv, from the PyTorch index whose
CUDA variant the driver and every GPU run, and builds the venv from it atomically.

Hermetic: a local PyTorch-shaped index with cpu, cu126 and cu130 variants and a small PyPI beside
it (:mod:`tests.support.torch_index`), the real uv, the real pynvml against the fake NVIDIA driver
library (per-GPU compute capabilities), the CLI in a subprocess. Only the last test, marked
``network``, reaches the default index.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dlsetup.envs.venv.pylock import load_toml, parse_pylock
from dlsetup.errors import IntegrityError
from dlsetup.output import load_schema
from tests.support.fake_nvml import no_library_env, nvml_env, system_has_nvml
from tests.support.proc import run_cli
from tests.support.signals import SIGNALLED
from tests.support.torch_index import TorchIndex

#: an R580 driver: CUDA 13.0
CUDA_13_DRIVER = {"driver": "580.65.06", "cuda": "13000"}
PASCAL = {"cc": "6.1", "gpu_names": "NVIDIA GeForce GTX 1080"}
ADA = {"cc": "8.9", "gpu_names": "NVIDIA GeForce RTX 4090"}
HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def recommended(cc: tuple[int, int]) -> str:
    """The PyTorch release doctor recommends for one GPU on a CUDA 13.0 driver (``2.14``)."""
    from dlsetup.compat.recommend import recommend_torch

    pick = recommend_torch("13.0", [cc], HOST_PYTHON)
    assert pick is not None
    return pick.release


def cpu_release() -> str:
    """The newest PyTorch release the knowledge base knows that supports this Python."""
    from dlsetup.compat.frameworks import python_support, torch_releases

    return next(
        r
        for r in reversed(torch_releases())
        if (s := python_support("torch", r)) is None or s.supports(HOST_PYTHON)
    )


def index_args(index: TorchIndex) -> list[str]:
    return ["--torch-index-url", index.torch_url, "--index-url", index.pypi_url]


def lock_json(env: dict[str, str], index: TorchIndex, out: Path, *args: str) -> dict[str, Any]:
    proc = run_cli(
        "lock", *args, "--backend", "venv", *index_args(index), "--output", str(out), "--json",
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, load_schema("dlsetup.venv-lock"))
    return dict(doc["data"])


def locked(lock: Path) -> dict[str, dict[str, Any]]:
    """The lock's packages by name (one platform's lock: one entry each)."""
    return {p["name"]: p for p in load_toml(lock.read_text())["packages"]}


def installed_versions(prefix: Path) -> dict[str, str]:
    """What the venv's own Python sees installed (importlib.metadata), name -> version."""
    code = (
        "import importlib.metadata as m, json\n"
        "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
    )
    proc = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    return dict(json.loads(proc.stdout))


# --- which index: the driver and every GPU ------------------------------------------------------


@pytest.mark.slow
def test_pascal_gpu_on_a_cuda_13_driver_locks_torch_from_the_cu126_index(
    fake_nvml_dir: Path, torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {**nvml_env(fake_nvml_dir, **CUDA_13_DRIVER, **PASCAL), **isolated_dirs}
    data = lock_json(env, torch_index, tmp_path, "pytorch", "--platform", "linux-64")
    assert data["variant"] == "cuda"
    assert data["cuda"] == "13.0"
    release = recommended((6, 1))
    assert data["torch"]["variant"] == "cu126"
    assert data["torch"]["release"] == release
    misfit = "cu130: GPU 0 NVIDIA GeForce GTX 1080 (6.1) is not in its arch list 7.5;8.0;8.6;9.0;10.0;12.0+PTX"
    assert data["torch"]["passed_over"][0] == misfit
    assert data["gpus"] == [
        {"index": 0, "name": "NVIDIA GeForce GTX 1080", "compute_capability": "6.1"}
    ]
    assert data["gpu_source"] == "driver:nvml"
    [platform] = data["platforms"]
    assert platform["torch_index"] == torch_index.variant_url("cu126")
    lock = Path(data["files"]["lock"])
    assert lock.name == "pylock.pytorch-cu126.toml"
    packages = locked(lock)
    # newer releases are on the index too: the release whose arch list was checked is pinned
    assert packages["torch"]["version"] == f"{release}.0+cu126"
    assert "/whl/cu126/" in packages["torch"]["wheels"][0]["url"]
    assert packages["nvidia-cudnn-cu12"]["version"] == "9.10.2.21"
    assert {"numpy", "ipykernel"} <= set(packages)
    text = lock.read_text()
    assert f"# PyTorch {release}, wheel variant cu126.\n" in text
    assert f"#   Passed over: {misfit}.\n" in text
    why = f"#   Why: 1 NVIDIA GPU(s); driver 580.65.06 supports CUDA 13.0; PyTorch {release} built "
    assert why in text
    tool = parse_pylock(lock).tool
    assert (tool["torch_variant"], tool["cuda"], tool["gpus"]) == (
        "cu126",
        "13.0",
        ["0:6.1 NVIDIA GeForce GTX 1080"],
    )


@pytest.mark.slow
def test_ada_gpu_on_the_same_driver_locks_torch_from_the_cu130_index(
    fake_nvml_dir: Path, torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {**nvml_env(fake_nvml_dir, **CUDA_13_DRIVER, **ADA), **isolated_dirs}
    data = lock_json(env, torch_index, tmp_path, "pytorch", "--platform", "linux-64")
    assert data["torch"]["variant"] == "cu130"
    packages = locked(Path(data["files"]["lock"]))
    assert packages["torch"]["version"] == f"{recommended((8, 9))}.0+cu130"
    assert "nvidia-cudnn-cu13" in packages
    assert "nvidia-cudnn-cu12" not in packages
    # cu132 is newer but runs on a CUDA 13.0 driver only through minor-version compatibility
    assert data["torch"]["passed_over"] == [
        "cu132: only through minor-version compatibility (CUDA 13.2 on a 13.0 driver); a fully "
        "supported one ranks first"
    ]


@pytest.mark.slow
def test_a_box_with_an_ada_and_a_pascal_gpu_gets_the_variant_both_run(
    fake_nvml_dir: Path, torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    scenario = {**CUDA_13_DRIVER, "gpu_count": "2", "cc": "8.9,6.1"}
    scenario["gpu_names"] = "NVIDIA GeForce RTX 4090,NVIDIA GeForce GTX 1080"
    env = {**nvml_env(fake_nvml_dir, **scenario), **isolated_dirs}
    data = lock_json(env, torch_index, tmp_path, "pytorch", "--platform", "linux-64")
    assert data["torch"]["variant"] == "cu126"
    assert "GPU 1 NVIDIA GeForce GTX 1080 (6.1)" in data["torch"]["passed_over"][0]


@pytest.mark.slow
def test_no_gpu_locks_the_cpu_index(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    if system_has_nvml():
        pytest.skip("a real NVML library is installed here")
    env = {**no_library_env(tmp_path / "no-nvml"), **isolated_dirs}
    data = lock_json(env, torch_index, tmp_path, "pytorch", "--platform", "linux-64")
    assert (data["variant"], data["torch"]["variant"], data["cuda"]) == ("cpu", "cpu", None)
    assert data["variant_reason"].startswith("no usable NVIDIA driver")
    packages = locked(Path(data["files"]["lock"]))
    assert packages["torch"]["version"] == f"{cpu_release()}.0+cpu"
    assert not any(name.startswith("nvidia-") for name in packages)


def test_the_variant_is_doctors_recommendation(
    torch_index: TorchIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One code path with doctor's pip fix: change recommend_torch's answer and the lock follows."""
    from dlsetup.compat import recommend
    from dlsetup.envs.venv.lock import VenvLockRequest, lock_venv

    request = VenvLockRequest(
        "pytorch",
        cuda="13.0",
        gpu_arch=("6.1",),
        platforms=("linux-64",),
        torch_index_url=torch_index.torch_url,
        index_url=torch_index.pypi_url,
    )
    expected = recommend.recommend_torch("13.0", [(6, 1)], HOST_PYTHON)
    assert expected is not None
    assert expected.variant == "cu126"
    assert lock_venv(request, tmp_path / "a", force=False).torch.variant == "cu126"  # type: ignore[union-attr]

    def cu130_always(*args: Any, **kwargs: Any) -> recommend.TorchPick:
        return recommend.TorchPick(expected.release, "cu130", "pip ...", "full", "stand-in")

    monkeypatch.setattr(recommend, "recommend_torch", cu130_always)
    result = lock_venv(request, tmp_path / "b", force=False)
    assert result.torch is not None
    assert result.torch.variant == "cu130"
    assert locked(result.lock_path)["torch"]["version"] == f"{expected.release}.0+cu130"


def test_cuda_without_gpus_says_no_arch_list_was_checked(
    torch_index: TorchIndex, tmp_path: Path
) -> None:
    from dlsetup.envs.venv.lock import VenvLockRequest, lock_venv, variant_reason

    request = VenvLockRequest(
        "pytorch",
        cuda="13.0",
        platforms=("linux-64",),
        torch_index_url=torch_index.torch_url,
        index_url=torch_index.pypi_url,
    )
    result = lock_venv(request, tmp_path, force=False)
    assert result.torch is not None
    assert result.torch.variant == "cu130"  # the newest the driver fully supports
    assert variant_reason(result).endswith("no arch list was checked")
    named = lock_venv(
        VenvLockRequest(**{**request.__dict__, "gpu_arch": ("8.9",)}), tmp_path, force=True
    )
    assert "no arch list was checked" not in variant_reason(named)


def test_a_kepler_gpu_is_refused_naming_it(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    proc = run_cli(
        "lock", "pytorch", "--backend", "venv", "--cuda", "13.0", "--gpu-arch", "3.5",
        *index_args(torch_index), "--output", str(tmp_path), env=isolated_dirs,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "no PyTorch CUDA wheel known to dlsetup runs on CUDA 13.0 with GPU 0" in proc.stderr
    # the GPU is the reason, not the driver: no advice to update it
    assert "no PyTorch wheel dlsetup knows has kernels for GPU 0" in proc.stderr
    assert "Fix: lock the cpu variant (--variant cpu)" in proc.stderr
    assert "update the NVIDIA driver" not in proc.stderr
    assert not list(tmp_path.glob("pylock*"))


def test_tensorflow_gets_its_cuda_wheels_on_linux_only(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    data = lock_json(
        isolated_dirs, torch_index, tmp_path, "tensorflow", "--cuda", "13.0",
        "--platform", "linux-64", "--platform", "win-64",
    )  # fmt: skip
    assert data["torch"] is None
    assert data["tensorflow"]["requirement"] == "tensorflow[and-cuda]==2.21.*"
    linux, windows = data["platforms"]
    assert linux["requirements"][0] == "tensorflow[and-cuda]==2.21.*"
    assert windows["requirements"][0] == "tensorflow==2.21.*"
    assert "nvidia-cudnn-cu12" in {p["name"] for p in linux["packages"]}
    assert "nvidia-cudnn-cu12" not in {p["name"] for p in windows["packages"]}
    cpu = lock_json(
        isolated_dirs, torch_index, tmp_path / "cpu", "tensorflow", "--variant", "cpu",
        "--platform", "linux-64",
    )  # fmt: skip
    assert cpu["tensorflow"] is None
    assert cpu["platforms"][0]["requirements"][0] == "tensorflow==2.21.*"


def test_several_platforms_merge_into_one_lock_each_with_its_index(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    from packaging.markers import default_environment
    from packaging.pylock import Pylock
    from packaging.tags import Tag

    data = lock_json(
        isolated_dirs, torch_index, tmp_path, "both", "--cuda", "13.0", "--gpu-arch", "6.1",
        "--all-platforms",
    )  # fmt: skip
    indexes = {p["platform"]: p["torch_index"] for p in data["platforms"]}
    assert indexes == {
        "linux-64": torch_index.variant_url("cu126"),
        "linux-aarch64": torch_index.variant_url("cpu"),
        "osx-arm64": torch_index.variant_url("cpu"),
        "win-64": torch_index.variant_url("cu126"),
    }
    lock = parse_pylock(Path(data["files"]["lock"]))
    assert len(lock.environments) == 4
    pylock = Pylock.from_dict(dict(lock.document))

    def chosen(sys_platform: str, machine: str, platform_tag: str) -> dict[str, str]:
        environment = {
            **default_environment(),
            "sys_platform": sys_platform,
            "platform_machine": machine,
            "python_full_version": f"{HOST_PYTHON}.0",
            "python_version": HOST_PYTHON,
        }
        tags = [
            Tag(py, py, platform_tag),
            Tag(py, "none", platform_tag),
            Tag("py3", "none", platform_tag),
            Tag("py3", "none", "any"),
        ]
        picked = pylock.select(environment=environment, tags=tags)  # type: ignore[arg-type]
        return {str(p.name): str(p.version) for p, _ in picked}

    py = f"cp{HOST_PYTHON.replace('.', '')}"
    mac = chosen("darwin", "arm64", "macosx_11_0_arm64")
    assert mac["torch"] == f"{recommended((6, 1))}.0"
    assert not any(n.startswith("nvidia-") for n in mac)
    linux = chosen("linux", "x86_64", "manylinux_2_28_x86_64")
    assert linux["torch"] == f"{recommended((6, 1))}.0+cu126"
    assert linux["tensorflow"] == "2.21.0"
    # torch's index serves the CUDA libraries it pins; TensorFlow's range takes the same ones
    assert linux["nvidia-cudnn-cu12"] == "9.10.2.21"


def test_conda_only_and_venv_only_options_are_refused_on_the_other_backend(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    proc = run_cli(
        "lock", "pytorch", "--backend", "venv", "--channel", "conda-forge", env=isolated_dirs
    )
    assert proc.returncode == 2
    assert "--channel does not apply to --backend venv" in proc.stderr
    proc = run_cli("lock", "pytorch", "--torch-index-url", torch_index.torch_url, env=isolated_dirs)
    assert proc.returncode == 2
    assert "--torch-index-url only applies to --backend venv" in proc.stderr
    conda_lock = tmp_path / "x.conda-lock.yml"
    conda_lock.write_text("version: 1\nmetadata: {}\npackage: []\n")
    proc = run_cli("lock", "--check", str(conda_lock), "--backend", "venv", env=isolated_dirs)
    assert proc.returncode == 2
    assert "is a conda-lock-v1 lock (the conda backend's), not a --backend venv lock" in proc.stderr
    proc = run_cli("lock", "--check", str(conda_lock), "--torch-version", "2.14", env=isolated_dirs)
    assert proc.returncode == 2
    assert "--torch-version only applies to --backend venv" in proc.stderr
    proc = run_cli("create", "--from-lock", str(conda_lock), "--backend", "venv", env=isolated_dirs)
    assert proc.returncode == 2
    assert "--backend venv builds from venv locks" in proc.stderr


# --- the lock file ------------------------------------------------------------------------------


def test_a_lock_with_an_sdist_or_a_wheel_without_sha256_is_refused(tmp_path: Path) -> None:
    sdist = tmp_path / "pylock.toml"
    sdist.write_text(
        'lock-version = "1.0"\ncreated-by = "x"\n\n[[packages]]\nname = "a"\nversion = "1"\n'
        'sdist = { url = "https://x/a-1.tar.gz", hashes = { sha256 = "' + "0" * 64 + '" } }\n'
    )
    with pytest.raises(IntegrityError, match="package a 1 has no wheel"):
        parse_pylock(sdist)
    md5_only = tmp_path / "pylock.md5.toml"
    md5_only.write_text(
        'lock-version = "1.0"\ncreated-by = "x"\n\n[[packages]]\nname = "a"\nversion = "1"\n'
        'wheels = [{ url = "https://x/a-1-py3-none-any.whl", hashes = { md5 = "' + "0" * 32
        + '" } }]\n'
    )  # fmt: skip
    with pytest.raises(IntegrityError, match=r"a-1-py3-none-any\.whl of a has no sha256"):
        parse_pylock(md5_only)


def test_the_toml_writer_round_trips_what_uv_writes(tmp_path: Path) -> None:
    import datetime as dt

    from dlsetup.envs.venv.pylock import merge_locks, write_pylock

    wheel = {
        "url": "https://files.example/a b/x-1-py3-none-any.whl",
        "upload-time": dt.datetime(2026, 7, 2, 8, 40, 4, tzinfo=dt.timezone.utc),
        "size": 45571,
        "hashes": {"sha256": "4" * 64},
    }
    part = {
        "lock-version": "1.0",
        "requires-python": ">=3.11",
        "created-by": "uv",
        "packages": [
            {"name": "x", "version": "1", "marker": "python_version >= '3.11'", "wheels": [wheel]}
        ],
    }
    linux = "sys_platform == 'linux'"
    tool = {"variant_reason": 'a "quoted" reason \\ with ünïcode\nand a newline', "gpus": []}
    document = merge_locks([(linux, part)], tool)
    path = tmp_path / "pylock.toml"
    write_pylock(path, document, ["header # with a hash"])
    lock = parse_pylock(path)
    assert lock.tool == tool
    assert lock.document["packages"][0]["wheels"][0] == wheel
    assert lock.packages[0].marker == f"{linux} and (python_version >= '3.11')"
    assert path.read_text().startswith("# header # with a hash\n")


# --- create -------------------------------------------------------------------------------------


@pytest.fixture
def cpu_lock(torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]) -> Path:
    data = lock_json(
        isolated_dirs, torch_index, tmp_path / "lock", "pytorch", "--variant", "cpu",
        "--platform", "linux-64",
    )  # fmt: skip
    return Path(data["files"]["lock"])


def create_json(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    proc = run_cli("create", *args, "--no-smoke", "--json", env=env)
    doc = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc, doc


def beside(prefix: Path) -> list[str]:
    """dlsetup's files beside the target: partial builds, old environments, target locks."""
    return sorted(p.name for p in prefix.parent.iterdir() if p.name.startswith(".dlsetup"))


@pytest.mark.slow
def test_create_from_lock_builds_the_locked_venv_whose_scripts_run_after_the_move(
    cpu_lock: Path, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    prefix = tmp_path / "envs" / "pt"
    proc, doc = create_json(isolated_dirs, "--from-lock", str(cpu_lock), "--prefix", str(prefix))
    assert proc.returncode == 0, proc.stderr
    jsonschema.validate(doc, load_schema("dlsetup.create"))
    data = doc["data"]
    assert data["prefix"] == str(prefix)
    assert (data["lock_format"], data["packages"], data["pypi_packages"]) == ("pylock", 0, 5)
    assert data["python"] == str(prefix / "bin" / "python")
    assert data["activate"] == f"source {prefix / 'bin' / 'activate'}"
    assert data["kernel"]["name"] == "dlsetup-pt"
    kernel = json.loads(Path(data["kernel"]["path"]).read_text())
    assert kernel["argv"][0] == str(prefix / "bin" / "python")
    want = {name: p["version"] for name, p in locked(cpu_lock).items()}
    have = installed_versions(prefix)
    assert {name: have.get(name) for name in want} == want
    # built in .dlsetup-partial-pt-PID/env and renamed: the console script still finds Python
    run = subprocess.run([str(prefix / "bin" / "torchrun")], capture_output=True, text=True)
    assert run.stdout.strip() == f"torch {cpu_release()}.0+cpu cpu None", run.stderr
    assert (prefix / "pyvenv.cfg").is_file()
    assert (prefix / "pylock.dlsetup.toml").read_bytes() == cpu_lock.read_bytes()
    assert beside(prefix) == []  # no partial build, no lock file left beside it
    activate = subprocess.run(
        ["bash", "-c", f"source {prefix}/bin/activate && command -v python && echo $VIRTUAL_ENV"],
        capture_output=True,
        text=True,
    )
    assert activate.stdout.split() == [str(prefix / "bin" / "python"), str(prefix)]


@pytest.mark.slow
def test_create_target_with_the_venv_backend_locks_and_names_it_like_conda(
    fake_nvml_dir: Path, torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {**nvml_env(fake_nvml_dir, **CUDA_13_DRIVER, **PASCAL), **isolated_dirs}
    proc, doc = create_json(env, "pytorch", "--backend", "venv", *index_args(torch_index))
    assert proc.returncode == 0, proc.stderr
    data = doc["data"]
    assert data["name"] == "pytorch-cu126"
    assert data["prefix"] == str(Path(isolated_dirs["DLSETUP_ENVS_DIR"]) / "pytorch-cu126")
    release = recommended((6, 1))
    assert f"PyTorch {release} built for CUDA 12.6" in data["variant_reason"]
    assert installed_versions(Path(data["prefix"]))["torch"] == f"{release}.0+cu126"
    again, _ = create_json(env, "pytorch", "--backend", "venv", *index_args(torch_index))
    assert again.returncode == 2
    assert "already exists; it was left unchanged" in again.stderr


def test_a_tampered_hash_is_refused_and_the_old_venv_stays(
    cpu_lock: Path, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    prefix = tmp_path / "pt"
    proc, _ = create_json(isolated_dirs, "--from-lock", str(cpu_lock), "--prefix", str(prefix))
    assert proc.returncode == 0, proc.stderr
    (prefix / "mine.txt").write_text("the old venv")
    torch_sha = locked(cpu_lock)["torch"]["wheels"][0]["hashes"]["sha256"]
    tampered = cpu_lock.with_name("pylock.tampered.toml")
    tampered.write_text(cpu_lock.read_text().replace(torch_sha, "f" * 64))
    proc, _ = create_json(
        isolated_dirs, "--from-lock", str(tampered), "--prefix", str(prefix), "--force"
    )
    assert proc.returncode == 4, proc.stderr
    assert f"Hash mismatch for `torch=={cpu_release()}.0+cpu`" in proc.stderr
    assert (prefix / "mine.txt").read_text() == "the old venv"
    assert beside(prefix) == []


def test_force_replaces_only_an_environment(
    cpu_lock: Path, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    plain = tmp_path / "data"
    plain.mkdir()
    (plain / "thesis.tex").write_text("x")
    proc, _ = create_json(
        isolated_dirs, "--from-lock", str(cpu_lock), "--prefix", str(plain), "--force"
    )
    assert proc.returncode == 2
    assert "is not empty and is not an environment" in proc.stderr
    assert sorted(p.name for p in plain.iterdir()) == ["thesis.tex"]
    venv = tmp_path / "old-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    proc, doc = create_json(
        isolated_dirs, "--from-lock", str(cpu_lock), "--prefix", str(venv), "--force"
    )
    assert proc.returncode == 0, proc.stderr
    assert doc["data"]["replaced"] is True
    assert installed_versions(venv)["torch"] == f"{cpu_release()}.0+cpu"


# --- interrupted and killed ---------------------------------------------------------------------


def pausing_uv(tmp_path: Path) -> tuple[Path, Path]:
    """A uv wrapper that writes its pid and sleeps before ``uv pip sync`` (mid-build)."""
    from dlsetup.envs.pypi.uv import uv_binary

    marker = tmp_path / "syncing.pid"
    shim = tmp_path / "uv-shim"
    shim.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = pip ] && [ "$2" = sync ]; then echo $$ > {marker}; exec sleep 60; fi\n'
        f'exec {uv_binary()} "$@"\n'
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return shim, marker


def start_create(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dlsetup", "create", *args, "--no-smoke"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **SIGNALLED,
    )


def wait_for(path: Path, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return int(path.read_text())
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("uv pip sync never started")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_or_interrupted_create_leaves_the_old_venv_and_nothing_half_built(
    signum: int, cpu_lock: Path, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    prefix = tmp_path / "pt"
    proc, _ = create_json(isolated_dirs, "--from-lock", str(cpu_lock), "--prefix", str(prefix))
    assert proc.returncode == 0, proc.stderr
    (prefix / "mine.txt").write_text("the old venv")
    shim, marker = pausing_uv(tmp_path)
    env = {**isolated_dirs, "DLSETUP_UV": str(shim)}
    running = start_create(env, "--from-lock", str(cpu_lock), "--prefix", str(prefix), "--force")
    shim_pid = wait_for(marker, running)
    partial = [p.name for p in prefix.parent.glob(".dlsetup-partial-pt-*")]
    assert partial == [f".dlsetup-partial-pt-{running.pid}"]  # mid-build, beside the target
    running.send_signal(signum)
    running.communicate(timeout=60)
    if signum == signal.SIGKILL:  # the kernel killed uv (PR_SET_PDEATHSIG); its sleep is left
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shim_pid, signal.SIGKILL)
    else:
        assert running.returncode == 130
        assert beside(prefix) == []  # the partial build is removed on the way out
    assert (prefix / "mine.txt").read_text() == "the old venv"
    assert installed_versions(prefix)["torch"] == f"{cpu_release()}.0+cpu"
    # the next create removes a killed one's partial build, and builds
    proc, _ = create_json(
        isolated_dirs, "--from-lock", str(cpu_lock), "--prefix", str(prefix), "--force"
    )
    assert proc.returncode == 0, proc.stderr
    assert not (prefix / "mine.txt").exists()
    assert beside(prefix) == []


# --- the real thing -----------------------------------------------------------------------------


def _reachable(host: str) -> bool:
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError:
        return False
    return True


@pytest.mark.network
@pytest.mark.slow
def test_a_real_cpu_torch_venv_from_the_default_index_passes_smoke(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    if not (_reachable("download.pytorch.org") and _reachable("pypi.org")):
        pytest.skip("download.pytorch.org or pypi.org is not reachable")
    prefix = tmp_path / "real"
    proc = run_cli(
        "create", "pytorch", "--backend", "venv", "--variant", "cpu", "--prefix", str(prefix),
        "--json", env=isolated_dirs, timeout=1800,
    )  # fmt: skip
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    data = doc["data"]
    assert data["smoke"]["status"] == "passed", data["smoke"]
    assert installed_versions(prefix)["torch"].endswith("+cpu")


@pytest.mark.network
@pytest.mark.slow
def test_the_real_cpu_torch_wheel_on_disk_builds_a_venv_that_passes_smoke(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """Where download.pytorch.org is out of reach (the build machines), the real CPU wheel that lies
    on disk stands in for its index (uv locks it, numpy and ipykernel come from PyPI); create
    builds the venv, registers its kernel and runs the real smoke test in it."""
    from dlsetup.envs.pypi.uv import uv_binary

    wheels = sorted(Path("/opt/wheels").glob("torch-*+cpu-*.whl"))
    if not wheels or not _reachable("pypi.org"):
        pytest.skip("no CPU torch wheel in /opt/wheels, or pypi.org is not reachable")
    version = wheels[-1].name.split("-")[1]
    source = tmp_path / "real.in"
    source.write_text(f"torch=={version}\nnumpy\nipykernel\n")
    lock = tmp_path / "pylock.real.toml"
    subprocess.run(
        [uv_binary(), "pip", "compile", str(source), "--format", "pylock.toml", "--find-links",
         "/opt/wheels", "--only-binary", ":all:", "--no-header", "--quiet", "-o", str(lock)],
        check=True, env={**os.environ, **isolated_dirs},
    )  # fmt: skip
    prefix = tmp_path / "real"
    proc = run_cli(
        "create", "--from-lock", str(lock), "--prefix", str(prefix), "--json",
        env=isolated_dirs, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)["data"]
    assert data["smoke"]["status"] == "passed", data["smoke"]
    assert data["smoke"]["summary"] == f"torch {version} on cpu"
    assert data["kernel"] is not None
    assert installed_versions(prefix)["torch"] == version
