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


def test_a_missing_lock_or_an_option_that_writes_is_a_usage_error(
    cuda_lock: Path, tmp_path: Path
) -> None:
    """(A lock conda-lock made is checked as conda-lock does: see the issue-21 tests below.)"""
    code, _ = check_json(str(tmp_path / "nope.conda-lock.yml"))
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


# ---- issue 21, item 6: locks conda-lock made, a changed python line, hand edits, --channel ---------

PLAIN_ENV = """\
name: plain
channels:
  - conda-forge
platforms:
  - linux-64
  - osx-arm64
dependencies:
  - python 3.12.*
  - numpy >=1.26
  - pip:
    - requests>=2
"""


def conda_lock_made(directory: Path, env_text: str = PLAIN_ENV) -> tuple[Path, Path]:
    """An environment file and the lock conda-lock makes of it, written by conda-lock's own code:
    its spec parser, its content hash over its default virtual packages, its lockfile models and
    writer, ``sources:`` relative to the lock as ``conda-lock lock`` records it (no solve: the
    packages are one stand-in per platform, which the input-hash check does not read)."""
    from conda_lock.common import relative_path
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.lockfile import write_conda_lock_file
    from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency, Lockfile, LockMeta
    from conda_lock.src_parser import make_lock_spec
    from conda_lock.virtual_package import default_virtual_package_repodata

    from dlsetup.envs.conda.lock import pypi_mapping_path

    directory.mkdir(parents=True, exist_ok=True)
    env = directory / "environment.yml"
    env.write_text(env_text)
    lock = directory / "conda-lock.yml"
    spec = make_lock_spec(src_files=[env], mapping_url=str(pypi_mapping_path()))
    repo = default_virtual_package_repodata()  # as conda-lock lock does: `with repo:`, no `as`
    with repo:
        hashes = compute_content_hashes(spec, repo)
    url = "https://conda.anaconda.org/conda-forge/{}/python-3.12.1-h0_0_cpython.conda"
    packages = [
        LockedDependency(
            name="python",
            version="3.12.1",
            manager="conda",
            platform=platform,
            dependencies={},
            build="h0_0_cpython",
            categories={"main"},
            url=url.format(platform),
            hash=HashModel(md5="0" * 32, sha256="a" * 64),
        )
        for platform in spec.platforms
    ]
    meta = LockMeta(
        content_hash=hashes,
        channels=list(spec.channels),
        platforms=spec.platforms,
        sources=[relative_path(lock.parent, env)],
    )
    write_conda_lock_file(Lockfile(package=packages, metadata=meta), lock, metadata_choices=set())
    return env, lock


def test_a_lock_conda_lock_made_is_checked_as_check_input_hash_does(tmp_path: Path) -> None:
    """Before: refused as "not made by dlsetup lock"."""
    env, lock = conda_lock_made(tmp_path / "project")
    assert "dlsetup_" not in lock.read_text()
    code, data = check_json(str(lock))
    assert code == 0, data
    assert data["current"] is True
    assert data["hash_engine"] == "conda-lock"
    assert data["platforms"] == ["linux-64", "osx-arm64"]
    assert data["source"] == str(env)
    assert data["variant"] is None  # conda-lock records none: no label is made up
    assert all(h["recorded"] == h["expected"] for h in data["content_hash"].values())
    code, text = run("--check", str(lock))
    assert code == 0, text
    assert "is current" in text and "conda-lock --check-input-hash" in text

    env.write_text(PLAIN_ENV.replace("  - numpy >=1.26\n", "  - numpy >=1.26\n  - scipy\n"))
    code, data = check_json(str(lock))
    assert code == 1
    [difference] = data["differences"]
    assert difference["kind"] == "content_hash"
    assert "linux-64, osx-arm64" in difference["message"]
    assert str(env) in difference["message"]
    code, text = run("--check", str(lock))
    assert code == 1
    again = next(line for line in text.splitlines() if line.startswith("Lock it again: "))
    assert f"conda-lock lock --file {env}" in again
    assert "--platform linux-64 --platform osx-arm64" in again
    assert f"--lockfile {lock}" in again


def test_a_conda_lock_lock_whose_source_is_gone_names_it_and_the_fix(tmp_path: Path) -> None:
    env, lock = conda_lock_made(tmp_path / "project")
    env.unlink()
    code, data = check_json(str(lock))
    assert code == 2
    message = data["error"]["message"]
    assert "made by conda-lock from environment.yml" in message
    assert str(env) in message
    assert f"--check {lock}" in data["error"]["fix"]
    moved = tmp_path / "elsewhere.yml"
    moved.write_text(PLAIN_ENV)
    code, data = check_json(str(lock), str(moved))  # named as TARGET: that file is compared
    assert code == 0, data


def test_a_changed_python_line_is_seen_and_the_old_pin_is_not_suggested_again(
    channel_url: str, tmp_path: Path
) -> None:
    """Before: the recorded pin was taken as asked for: nothing stale, and "Lock it again" added
    ``--python-version 3.11``."""
    source = tmp_path / "environment.yml"
    source.write_text(USER_ENV.replace("python 3.12.*", "python=3.11"))
    out = tmp_path / "locks"
    code, text = run(
        str(source), "--platform", "linux-64", "--channel", channel_url, "--output", str(out)
    )
    assert code == 0, text
    lock = out / "course.conda-lock.yml"
    source.write_text(USER_ENV.replace("python 3.12.*", "python=3.12"))
    code, data = check_json(str(lock), str(source))
    assert code == 1
    assert [d["message"] for d in data["differences"]] == [
        "environment file changed: python=3.11 -> python=3.12"
    ]
    code, text = run(str(source), "--check", str(lock))
    assert code == 1
    again = next(line for line in text.splitlines() if line.startswith("Lock it again: "))
    assert "--python-version" not in again, again
    # an option given when locking is kept: it is recorded in the lock
    code, text = run(
        str(source), "--platform", "linux-64", "--channel", channel_url, "--python-version",
        "3.11", "--output", str(out), "--force",
    )  # fmt: skip
    assert code == 0, text
    code, data = check_json(str(lock), str(source))
    assert code == 0, data
    # a lock made before the option was recorded: its 'python 3.11.*' line, which the file does
    # not have, is read as the option it was
    older = lock.read_text().replace("    dlsetup_python_version: '3.11'\n", "")
    assert "dlsetup_python_version" not in older
    lock.write_text(older)
    code, data = check_json(str(lock), str(source))
    assert code == 0, data


def test_a_package_added_beside_the_lock_is_called_a_hand_edit_not_a_removal(
    user_lock: tuple[Path, Path],
) -> None:
    """Before: "environment file changed: removed scipy" for a package the user added."""
    source, lock = user_lock
    beside = lock.with_name("course.environment.yml")
    beside.write_text(beside.read_text() + "  - scipy\n")
    code, data = check_json(str(lock), str(source))
    assert code == 1
    messages = [d["message"] for d in data["differences"]]
    assert not any("removed" in m for m in messages), messages
    assert messages == [
        "course.environment.yml beside the lock was edited after the lock was made (conda-lock's "
        f"content hash no longer matches it): added scipy, which {source} does not list"
    ]


def test_lock_it_again_keeps_the_channels_the_lock_was_made_from(
    user_lock: tuple[Path, Path], channel_url: str
) -> None:
    """Before: the suggested command dropped ``--channel`` (and locked from conda-forge)."""
    source, lock = user_lock
    source.write_text(USER_ENV + "  - torchvision\n")
    code, text = run(str(source), "--check", str(lock))
    assert code == 1
    again = next(line for line in text.splitlines() if line.startswith("Lock it again: "))
    assert f"--channel {channel_url}" in again, again
