"""Issue 15: ``dlsetup lock --check LOCKFILE`` (exit 0 current, 1 stale with the reasons, 2 usage)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from dlsetup.cli import cli
from dlsetup.envs import pipeline
from dlsetup.envs.conda import lock_check as check_mod
from dlsetup.envs.conda.virtual_packages import VirtualPackage
from dlsetup.output import load_schema

USER_ENV = """\
name: course
channels:
  - conda-forge
dependencies:
  - python 3.12.*
  - numpy
  - pytorch * cpu_*
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["lock", *args])
    return result.exit_code, result.output


def check_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["lock", "--check", *args, "--json"])
    code = result.exit_code
    doc = json.loads(result.stdout)
    schema = "dlsetup.lock-check" if code in (0, 1) else "dlsetup.error"
    jsonschema.validate(doc, load_schema(schema))
    return code, doc["data"]


@pytest.fixture
def cuda_lock(channel_url: str, tmp_path: Path) -> Path:
    out = tmp_path / "locks"
    code, text = run(
        "pytorch", "--cuda", "13.0", "--gpu-arch", "6.1", "--platform", "linux-64",
        "--platform", "linux-aarch64", "--channel", channel_url, "--output", str(out),
    )  # fmt: skip
    assert code == 0, text
    return out / "pytorch-cuda.conda-lock.yml"


@pytest.fixture
def user_lock(channel_url: str, tmp_path: Path) -> tuple[Path, Path]:
    source = tmp_path / "environment.yml"
    source.write_text(USER_ENV)
    out = tmp_path / "locks"
    code, text = run(
        str(source), "--platform", "linux-64", "--channel", channel_url, "--output", str(out)
    )
    assert code == 0, text
    return source, out / "course.conda-lock.yml"


def test_a_fresh_lock_is_current_without_conda_lock_doing_the_hash(cuda_lock: Path) -> None:
    code, data = check_json(str(cuda_lock))
    assert code == 0
    assert data["current"] is True
    assert data["differences"] == []
    assert (data["variant"], data["cuda"]) == ("cuda", "13.0")
    assert data["hash_engine"] == "dlsetup"  # the fast path reproduced conda-lock's hashes
    assert all(h["recorded"] == h["expected"] for h in data["content_hash"].values())
    code, text = run("--check", str(cuda_lock))
    assert code == 0
    assert "is current (linux-64, linux-aarch64; cuda, CUDA 13.0)" in text


def test_the_fast_content_hash_is_conda_locks_own(cuda_lock: Path) -> None:
    env = cuda_lock.with_name("pytorch-cuda.environment.yml").read_text()
    vp = cuda_lock.with_name("pytorch-cuda.virtual-packages.yml").read_text()
    real = check_mod.conda_lock_content_hashes(env, vp)
    record = check_mod.read_lock_record(cuda_lock)
    assert real == record.content_hash
    deps = check_mod._dependencies_by_platform(
        cuda_lock.with_name("pytorch-cuda.environment.yml"), record.platforms
    )
    for platform in record.platforms:
        vps = tuple(check_mod._parse_vps(record.custom[f"dlsetup_virtual_packages_{platform}"], {}))
        assert (
            check_mod.fast_content_hash(record.channels, deps[platform], platform, vps)
            == real[platform]
        )


@pytest.mark.parametrize(
    "spec",
    ["numpy", "numpy >=1.24,<3", "python 3.12.*", "pytorch * cuda129_*", "scipy ==1.11.2 h0_1",
     "cuda-version >=12.9,<13", "pkg 1.2"],
)  # fmt: skip
def test_fast_hash_matches_conda_lock_for_each_spec_form_or_declines(
    spec: str, tmp_path: Path
) -> None:
    env = f"name: x\nchannels:\n  - conda-forge\nplatforms:\n  - linux-64\ndependencies:\n  - {spec}\n"
    vps = (
        VirtualPackage("__unix", "0"),
        VirtualPackage("__archspec", "1", "x86_64"),
        VirtualPackage("__cuda", "12.4"),
    )
    from dlsetup.envs.conda.virtual_packages import spec_file_text

    real = check_mod.conda_lock_content_hashes(env, spec_file_text({"linux-64": vps}))["linux-64"]
    fast = check_mod.fast_content_hash(("conda-forge",), [spec], "linux-64", vps)
    assert fast in (None, real)


def test_editing_the_environment_file_makes_it_stale_and_names_the_package(
    user_lock: tuple[Path, Path],
) -> None:
    source, lock = user_lock
    code, data = check_json(str(lock), str(source))  # TARGET after the option: the user's file
    assert code == 0, data
    source.write_text(USER_ENV + "  - torchvision\n")
    code, data = check_json(str(lock), str(source))
    assert code == 1
    assert [d["message"] for d in data["differences"]] == [
        "environment file changed: added torchvision"
    ]
    code, text = run(str(source), "--check", str(lock))
    assert code == 1
    assert "  environment file changed: added torchvision\n" in text


def test_a_user_file_lock_without_the_file_checks_the_files_beside_it(
    user_lock: tuple[Path, Path],
) -> None:
    _, lock = user_lock
    code, data = check_json(str(lock))
    assert code == 0
    assert data["source"] is None
    assert "does not record" in data["notes"][0]
    env = lock.with_name("course.environment.yml")
    env.write_text(env.read_text() + "  - scipy\n")  # edited by hand: the hash no longer fits
    code, data = check_json(str(lock))
    assert code == 1
    assert data["differences"][0]["kind"] == "content_hash"
    assert data["hash_engine"] == "conda-lock"


def test_another_cuda_or_gpu_arch_makes_it_stale(cuda_lock: Path) -> None:
    code, data = check_json(str(cuda_lock), "--cuda", "12.4")
    assert code == 1
    assert data["differences"][0]["message"] == "locked for CUDA 13.0, --cuda asks for 12.4"
    code, data = check_json(str(cuda_lock), "--gpu-arch", "8.6")
    assert code == 1
    messages = [d["message"] for d in data["differences"]]
    assert messages[0] == "locked for GPUs 6.1, --gpu-arch asks for 8.6"
    assert any(m.startswith("CUDA line for linux-64: locked 12.9, now 13.0") for m in messages)
    # the line's own pins are reported as the line, not as an edited environment file
    assert not any(m.startswith("environment file changed") for m in messages)
    code, data = check_json(str(cuda_lock), "--gpu-arch", "6.1", "--cuda", "13.0")
    assert code == 0, data
    # the line that locks it again keeps GPUs named by hand (a driver's GPUs are read again)
    code, text = run("--check", str(cuda_lock), "--gpu-arch", "8.6")
    assert code == 1
    again = next(line for line in text.splitlines() if line.startswith("Lock it again: "))
    assert "--cuda 13.0" in again and "--gpu-arch 8.6" in again, again


def test_another_platform_or_variant_makes_it_stale(cuda_lock: Path) -> None:
    code, data = check_json(str(cuda_lock), "--platform", "linux-64")
    assert code == 1
    assert data["differences"][0]["kind"] == "platforms"
    code, data = check_json(str(cuda_lock), "--variant", "cpu")
    assert code == 1
    assert data["differences"][0]["message"] == "locked as cuda, asked for --variant cpu"


def test_a_driver_cuda_lock_compares_this_machines_driver_only_when_it_was_auto(
    cuda_lock: Path,
) -> None:
    from dlsetup.probes.nvidia import NvidiaFacts

    # this lock's CUDA came from --cuda: the driver here is never asked
    def no_probe() -> NvidiaFacts:
        raise AssertionError("probed")

    assert pipeline.check_lock(cuda_lock, probe=no_probe).current
    text = cuda_lock.read_text().replace("__cuda=option:--cuda", "__cuda=driver:nvml")
    cuda_lock.write_text(text)
    facts = NvidiaFacts(status="ok", driver_version="590.1", cuda_driver_version="13.1")  # type: ignore[call-arg]
    result = pipeline.check_lock(cuda_lock, probe=lambda: facts)
    assert not result.current
    assert result.differences[0].message == "locked for CUDA 13.0, this machine's driver gives 13.1"


@pytest.mark.parametrize(
    "text",
    ["garbage\n", "version: 1\nmetadata: [1, 2]\n", "version: 2\nmetadata: {}\n", ": : :\n  - [\n"],
)
def test_a_malformed_lock_is_a_usage_error(text: str, tmp_path: Path) -> None:
    lock = tmp_path / "x.conda-lock.yml"
    lock.write_text(text)
    code, data = check_json(str(lock))
    assert code == 2
    assert data["error"]["type"] == "InputError"
    message = data["error"]["message"]  # refused when its format is detected, or when read
    assert str(lock) in message
    assert any(w in message for w in ("malformed lock", "not a lock dlsetup reads", "readable"))


def test_a_plain_conda_lock_file_or_a_missing_one_is_a_usage_error(
    cuda_lock: Path, tmp_path: Path
) -> None:
    plain = "\n".join(
        line for line in cuda_lock.read_text().splitlines() if "dlsetup_" not in line
    ).replace("  custom_metadata:\n", "")
    lock = tmp_path / "plain.conda-lock.yml"
    lock.write_text(plain)
    code, data = check_json(str(lock))
    assert code == 2
    assert "not made by dlsetup lock" in data["error"]["message"]
    code, data = check_json(str(tmp_path / "nope.conda-lock.yml"))
    assert code == 2
    code, _ = run("--check", str(cuda_lock), "--force")
    assert code == 2
    code, _ = run("--check", str(cuda_lock), "--output", str(tmp_path))
    assert code == 2


def test_check_is_fast_on_a_1000_package_lock(cuda_lock: Path) -> None:
    from benchmarks.bench_lock_check import grow

    big = grow(cuda_lock, 1000)
    pipeline.check_lock(big)  # warm the imports, as a CLI process pays them once
    start = time.perf_counter()
    result = pipeline.check_lock(big)
    took = time.perf_counter() - start
    assert result.current
    assert took < 0.5, took
