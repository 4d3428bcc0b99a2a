"""``dlsetup create``: a verified, atomic install from a lock into a prefix, a Jupyter kernel,
refusals that leave everything as it was."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from dlsetup.cli import cli
from dlsetup.envs.staging import clean_leftovers, remove_partial
from dlsetup.output import load_schema
from tests.envs.lock_builders import lock_args
from tests.smoke.fault_env import fault_env
from tests.support.pause_env import pause_env
from tests.support.proc import REPO
from tests.support.signals import SIGNALLED


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def error_of(output: str) -> str:
    """The ``Error: ...`` part of an output (progress lines on stderr come before it)."""
    assert "Error: " in output, output
    return output[output.index("Error: ") :]


@pytest.fixture
def cpu_lock(channel_url: str, tmp_path: Path) -> Path:
    """A linux-64 PyTorch CPU lock against the test channel."""
    out = tmp_path / "locks"
    code, text = invoke(*lock_args("pytorch", channel_url, out))
    assert code == 0, text
    return out / "pytorch-cpu.conda-lock.yml"


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_create_from_lock_fills_the_prefix_with_records_files_and_rewritten_placeholders(
    cpu_lock: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "envs" / "pt"
    code, out = invoke(
        "create", "--from-lock", str(cpu_lock), "--prefix", str(prefix), "--no-smoke"
    )
    assert code == 0, out
    records = sorted(p.name for p in (prefix / "conda-meta").glob("*.json"))
    assert records == [
        "ipykernel-6.30.1-pyhd8ed1ab_0.json",
        "jupyter-1.1.1-pyhd8ed1ab_0.json",
        "numpy-2.3.4-py312h0_0.json",
        "pip-25.2-pyhd8ed1ab_0.json",
        "python-3.12.9-h0_0_cpython.json",
        "python_abi-3.12-8_cp312.json",
        "pytorch-2.13.0-cpu_mkl_py312h0_100.json",
        "torchvision-0.28.0-cpu_py312_h0_1.json",  # PyTorch's CPU companion (issue 14)
    ]
    assert (prefix / "lib" / "torchvision-3.12-cpu.txt").is_file()
    assert (prefix / "lib" / "dlsetup-prefix.txt").read_text() == f"prefix={prefix}\n"
    assert (prefix / "lib" / "torch-3.12-cpu.txt").is_file()
    assert (
        prefix / "lib" / "python3.12" / "site-packages" / "ipykernel_standin" / "__init__.py"
    ).is_file()
    record = json.loads(
        (prefix / "conda-meta" / "pytorch-2.13.0-cpu_mkl_py312h0_100.json").read_text()
    )
    assert record["url"].endswith("/linux-64/pytorch-2.13.0-cpu_mkl_py312h0_100.tar.bz2")
    assert record["url"].startswith(cpu_lock.read_text().split("- url: ")[1].split("\n")[0])
    assert (prefix / "conda-meta" / "dlsetup.conda-lock.yml").read_bytes() == cpu_lock.read_bytes()
    assert f'Activate it: export PATH="{prefix}/bin:$PATH"' in out
    assert not [p for p in prefix.parent.iterdir() if p.name.startswith(".dlsetup-")]


def test_create_registers_a_jupyter_kernel_in_jupyter_data_dir(
    cpu_lock: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "envs" / "course"
    code, out = invoke(
        "create", "--from-lock", str(cpu_lock), "--prefix", str(prefix), "--no-smoke", "--json"
    )
    assert code == 0, out
    doc = json.loads(out)
    jsonschema.validate(doc, load_schema("dlsetup.create"))
    kernel_json = (
        Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels" / "dlsetup-course" / "kernel.json"
    )
    assert doc["data"]["kernel"] == {"name": "dlsetup-course", "path": str(kernel_json)}
    spec = json.loads(kernel_json.read_text())
    assert spec["argv"] == [
        str(prefix / "bin" / "python"),
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    ]
    assert spec["display_name"] == "Python (course, dlsetup)"
    assert doc["data"]["smoke"] == {
        "status": "skipped",
        "reason": "--no-smoke",
        "exit_code": None,
        "summary": "",
        "failures": [],
        "record": None,
        "rerun": None,
        "seconds": None,
    }


def test_no_jupyter_skips_the_kernel_and_a_stand_in_python_skips_smoke(
    cpu_lock: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "envs" / "nok"
    code, out = invoke(
        "create", "--from-lock", str(cpu_lock), "--prefix", str(prefix), "--no-jupyter", "--json"
    )
    assert code == 0, out
    data = json.loads(out)["data"]
    assert data["kernel"] is None
    assert data["smoke"]["status"] == "skipped"
    assert data["smoke"]["reason"] == f"{prefix / 'bin' / 'python'} does not run"
    assert not (Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels").exists()


@pytest.fixture
def runnable_lock(runnable_channel_url: str, tmp_path: Path) -> Path:
    """A linux-64 PyTorch CPU lock whose python really runs (it execs this test interpreter)."""
    out = tmp_path / "runnable-locks"
    code, text = invoke(*lock_args("pytorch", runnable_channel_url, out))
    assert code == 0, text
    return out / "pytorch-cpu.conda-lock.yml"


def _versions() -> tuple[str, str]:
    from importlib.metadata import version

    return version("torch"), version("tensorflow-cpu")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="the runnable python stand-in is a sh script")
def test_create_runs_smoke_inside_the_new_environment_and_keeps_the_passing_result(
    runnable_lock: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "envs" / "runnable"
    python = prefix / "bin" / "python"
    code, out = invoke(
        "create", "--from-lock", str(runnable_lock), "--prefix", str(prefix), "--json"
    )
    assert code == 0, out
    doc = json.loads(out)
    jsonschema.validate(doc, load_schema("dlsetup.create"))
    smoke = doc["data"]["smoke"]
    record = prefix / "etc" / "dlsetup" / "smoke.json"
    torch_version, tf_version = _versions()
    assert smoke["status"] == "passed", smoke
    assert smoke["exit_code"] == 0
    assert smoke["reason"] == ""
    assert smoke["failures"] == []
    assert smoke["record"] == str(record)
    assert smoke["rerun"] == f"dlsetup smoke --python {python}"
    assert smoke["summary"].startswith(f"torch {torch_version} on cpu, tensorflow {tf_version} on ")
    # the kept record is the smoke command's own document, about the environment's python
    kept = json.loads(record.read_text())
    jsonschema.validate(kept, load_schema("dlsetup.smoke"))
    assert kept["data"]["passed"] is True
    assert kept["data"]["python"] == str(python)
    assert {(r["framework"], len(r["combinations"])) for r in kept["data"]["runs"]} >= {
        ("torch", 48),
        ("tensorflow", 48),
    }
    # conda reads every conda-meta/*.json as a package record: the smoke result is not one
    for meta in (prefix / "conda-meta").glob("*.json"):
        assert {"name", "version", "build"} <= set(json.loads(meta.read_text())), meta


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="the runnable python stand-in is a sh script")
def test_create_with_a_failing_smoke_check_keeps_the_env_exits_1_and_says_how_to_rerun(
    runnable_lock: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = tmp_path / "envs" / "broken-relu"
    python = prefix / "bin" / "python"
    record = prefix / "etc" / "dlsetup" / "smoke.json"
    for name, value in fault_env("torch:wrong-activation=relu").items():
        monkeypatch.setenv(name, value)
    code, out = invoke("create", "--from-lock", str(runnable_lock), "--prefix", str(prefix))
    assert code == 1, out
    # the environment was built correctly, so it stays in place, complete
    assert (prefix / "conda-meta" / "pytorch-2.13.0-cpu_mkl_py312h0_100.json").is_file()
    assert not [p for p in prefix.parent.iterdir() if p.name.startswith(".dlsetup-")]
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("Smoke test: "))
    assert re.fullmatch(
        r"Smoke test: FAILED in \d+\.\d s\. The environment was built and stays installed; "
        r"what failed:",
        lines[head],
    ), lines[head]
    assert lines[head + 1 : head + 3] == [
        "  torch on cpu: activation relu value (float32) at x=100: got 150, expected 100 "
        "(NumPy reference, rtol 1e-05, atol 1e-06)",
        "  torch on cpu: activation relu d/dx (float32) at x=0.001: got 1.5, expected 1 "
        "(NumPy reference, rtol 1e-05, atol 1e-06)",
    ]
    assert f"  full result kept in {record}\nRerun it: dlsetup smoke --python {python}\n" in out
    assert f'Activate it: export PATH="{prefix}/bin:$PATH"' in out
    assert "Running dlsetup smoke inside the environment (a minute or two) ...\n" in out
    assert not any("tensorflow on" in line for line in lines), "only torch's relu was broken"
    kept = json.loads(record.read_text())
    assert kept["data"]["passed"] is False
    # the rerun command it names runs (torch only, to keep this test short) and sees the fault
    named = shlex.split(out.split("Rerun it: ")[1].splitlines()[0])
    assert named[0] == "dlsetup"
    rerun = subprocess.run(
        [sys.executable, "-m", *named, "--framework", "torch"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert rerun.returncode == 1, rerun.stderr
    assert "FAIL activation relu value (float32) at x=100: got 150, expected 100" in rerun.stdout


def test_create_target_locks_first_and_uses_the_envs_dir_for_name(channel_url: str) -> None:
    code, out = invoke(
        "create",
        "tensorflow",
        "--variant",
        "cpu",
        "--channel",
        channel_url,
        "--name",
        "tf",
        "--no-smoke",
    )
    assert code == 0, out
    prefix = Path(os.environ["DLSETUP_ENVS_DIR"]) / "tf"
    assert (prefix / "conda-meta" / "tensorflow-2.19.1-cpu_py312h0_0.json").is_file()


def test_create_into_an_existing_prefix_without_force_is_refused_and_the_prefix_is_unchanged(
    cpu_lock: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "existing"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "tool").write_text("precious\n")
    (prefix / "conda-meta").mkdir()  # an environment: only those can be replaced, with --force
    (prefix / "conda-meta" / "history").write_text("")
    before = snapshot(prefix)
    code, out = invoke(
        "create", "--from-lock", str(cpu_lock), "--prefix", str(prefix), "--no-smoke"
    )
    assert code == 2
    assert error_of(out) == (
        f"Error: environment {prefix} already exists; it was left unchanged\n"
        "Fix: pass --force to replace it (the new one is built first), or choose another --name/--prefix\n"
    )
    assert snapshot(prefix) == before


def test_force_replaces_an_existing_environment_only_with_a_complete_one(
    cpu_lock: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "existing"
    (prefix / "conda-meta").mkdir(parents=True)  # an environment: only those can be replaced
    (prefix / "old.txt").write_text("old\n")
    code, out = invoke(
        "create",
        "--from-lock",
        str(cpu_lock),
        "--prefix",
        str(prefix),
        "--force",
        "--no-smoke",
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["data"]["replaced"] is True
    assert not (prefix / "old.txt").exists()
    assert (prefix / "conda-meta" / "python-3.12.9-h0_0_cpython.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dlsetup-")] == []


def test_tampered_sha256_in_the_lock_is_refused(cpu_lock: Path, tmp_path: Path) -> None:
    text = cpu_lock.read_text()
    match = re.search(r"- name: pytorch\n(?:.*\n)*?    sha256: ([0-9a-f]{64})", text)
    assert match
    good = match.group(1)
    tampered = tmp_path / "tampered.conda-lock.yml"
    tampered.write_text(text[: match.start(1)] + "0" * 64 + text[match.end(1) :])
    prefix = tmp_path / "envs" / "t"
    code, out = invoke(
        "create", "--from-lock", str(tampered), "--prefix", str(prefix), "--no-smoke"
    )
    assert code == 4
    assert error_of(out).startswith(
        "Error: sha256 mismatch for pytorch-2.13.0-cpu_mkl_py312h0_100.tar.bz2: the lock tampered.conda-lock.yml "
        f"says {'0' * 64}, the archive at "
    )
    assert f" has {good}; refused\n" in out
    assert not prefix.exists()


def test_tampered_package_archive_is_refused_even_with_the_original_already_cached(
    channel_dir: Path, tmp_path: Path
) -> None:
    from tests.envs.channel import build_channel

    chan = tmp_path / "chan"
    url = build_channel(chan)
    out_dir = tmp_path / "locks"
    assert invoke(*lock_args("pytorch", url, out_dir))[0] == 0
    lock = out_dir / "pytorch-cpu.conda-lock.yml"
    assert (
        invoke(
            "create", "--from-lock", str(lock), "--prefix", str(tmp_path / "first"), "--no-smoke"
        )[0]
        == 0
    )
    archive = chan / "linux-64" / "numpy-2.3.4-py312h0_0.tar.bz2"
    archive.write_bytes(archive.read_bytes() + b"\0")
    # the verified archive cache must not hide the change: empty it, as on another machine
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "dlsetup" / "archives"
    for cached in cache.iterdir():
        cached.unlink()
    code, out = invoke(
        "create", "--from-lock", str(lock), "--prefix", str(tmp_path / "second"), "--no-smoke"
    )
    assert code == 4
    assert error_of(out).startswith(
        "Error: sha256 mismatch for numpy-2.3.4-py312h0_0.tar.bz2: the lock pytorch-cpu.conda-lock.yml says "
    )
    assert not (tmp_path / "second").exists()


def test_lock_url_outside_the_declared_channels_is_refused(
    cpu_lock: Path, tmp_path: Path, channel_url: str
) -> None:
    text = cpu_lock.read_text()
    evil = text.replace(
        f"url: {channel_url}/linux-64/numpy-", "url: https://evil.example/linux-64/numpy-"
    )
    assert evil != text
    lock = tmp_path / "evil.conda-lock.yml"
    lock.write_text(evil)
    code, out = invoke(
        "create", "--from-lock", str(lock), "--prefix", str(tmp_path / "e"), "--no-smoke"
    )
    assert code == 4
    assert error_of(out).startswith(
        f"Error: numpy-2.3.4-py312h0_0.tar.bz2 in {lock} comes from https://evil.example/linux-64/"
        f"numpy-2.3.4-py312h0_0.tar.bz2, outside the lock's declared channels ({channel_url}/); refused\n"
    )
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("name", ["bad name", "../escape", "base", "-dash", "a/b", "x" * 65])
def test_invalid_environment_name_is_refused(name: str, cpu_lock: Path) -> None:
    code, out = invoke("create", "--from-lock", str(cpu_lock), "--name", name)
    assert code == 2
    assert error_of(out).startswith(
        f"Error: invalid environment name {name!r}: use letters, digits, '.', '_' and '-', start with a "
        "letter or digit, at most 64 characters, and not 'base' or 'root'\n"
    )


def test_lock_without_this_platform_says_which_platforms_it_has(
    channel_url: str, tmp_path: Path
) -> None:
    out_dir = tmp_path / "locks"
    assert (
        invoke(
            "lock",
            "pytorch",
            "--platform",
            "osx-arm64",
            "--channel",
            channel_url,
            "--output",
            str(out_dir),
        )[0]
        == 0
    )
    lock = out_dir / "pytorch-mps.conda-lock.yml"
    code, out = invoke("create", "--from-lock", str(lock), "--prefix", str(tmp_path / "p"))
    assert code == 2
    assert f"Error: {lock} has no packages for linux-64; it has: osx-arm64\n" in out


@pytest.mark.slow
def test_create_killed_mid_install_leaves_the_target_absent_and_the_next_run_cleans_up(
    cpu_lock: Path, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    prefix = tmp_path / "envs" / "killed"
    marker = tmp_path / "paused"
    env = {**os.environ, **isolated_dirs, **pause_env(marker)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dlsetup",
            "create",
            "--from-lock",
            str(cpu_lock),
            "--prefix",
            str(prefix),
            "--no-smoke",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "create finished before pausing"
            assert time.monotonic() < deadline, "create never reached the pause point"
            time.sleep(0.05)
        partial = prefix.parent / f".dlsetup-partial-killed-{proc.pid}"
        assert (partial / "env" / "conda-meta").is_dir()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not prefix.exists()
    assert partial.exists()  # the leftover is clearly named ...
    code, out = invoke(
        "create", "--from-lock", str(cpu_lock), "--prefix", str(prefix), "--no-smoke"
    )
    assert code == 0, out
    assert not partial.exists()  # ... and removed by the next run
    assert (prefix / "conda-meta" / "pytorch-2.13.0-cpu_mkl_py312h0_100.json").is_file()


@pytest.mark.slow
def test_ctrl_c_mid_install_exits_130_removes_the_partial_build_and_keeps_the_old_env(
    cpu_lock: Path, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    prefix = tmp_path / "envs" / "interrupted"
    (prefix / "conda-meta").mkdir(parents=True)  # an environment: only those can be replaced
    (prefix / "conda-meta" / "history").write_text("")
    (prefix / "old.txt").write_text("old\n")
    marker = tmp_path / "paused"
    env = {**os.environ, **isolated_dirs, **pause_env(marker, 2)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dlsetup",
            "create",
            "--from-lock",
            str(cpu_lock),
            "--prefix",
            str(prefix),
            "--force",
            "--no-smoke",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **SIGNALLED,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.endswith("Interrupted.\n")
    assert snapshot(prefix) == {"conda-meta/history": b"", "old.txt": b"old\n"}
    assert [p.name for p in prefix.parent.iterdir()] == ["interrupted"]


def _has_files(root: Path, pattern: str, count: int) -> bool:
    """Whether the directories matching ``pattern`` under ``root`` hold at least ``count`` entries."""
    seen = 0
    for directory in root.glob(pattern):
        for _ in directory.rglob("*"):
            seen += 1
            if seen >= count:
                return True
    return False


@pytest.fixture(scope="module")
def many_files_lock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lock whose ``manyfiles`` package (20,000 files) takes rattler a while to unpack."""
    from tests.envs.channel import Package, build_channel

    root = tmp_path_factory.mktemp("many-files")
    files = {f"lib/many/f{i:05d}.txt": str(i).encode() * 20 for i in range(20_000)}
    extra = [Package("manyfiles", "1.0", "h0_0", "noarch", noarch="generic", files=files)]
    url = build_channel(root / "channel", extra)
    env_file = root / "many.yml"
    env_file.write_text(
        "name: many\nchannels:\n  - conda-forge\nplatforms:\n  - linux-64\n"
        "dependencies:\n  - python 3.12.*\n  - manyfiles\n"
    )
    code, out = invoke(*lock_args(env_file, url, root))
    assert code == 0, out
    return root / "many.conda-lock.yml"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_while_rattler_unpacks_a_package_stops_at_once_and_leaves_nothing_behind(
    many_files_lock: Path, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    prefix = tmp_path / "envs" / "many"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "dlsetup", "create", "--from-lock", str(many_files_lock),
            "--prefix", str(prefix), "--no-smoke", "--no-jupyter",
        ],
        env={**os.environ, **isolated_dirs},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **SIGNALLED,
    )  # fmt: skip
    unpacking = prefix.parent / f".dlsetup-partial-many-{proc.pid}" / "pkgs"
    deadline = time.monotonic() + 120
    # wait until rattler is in the middle of writing manyfiles' 20,000 files
    while not _has_files(unpacking, "*manyfiles*", 50):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "never saw the package being unpacked"
        time.sleep(0.01)
    interrupted = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    stopped_s = time.monotonic() - interrupted
    assert proc.returncode == 130, stderr
    assert stderr.endswith("Interrupted.\n")
    assert stopped_s < 10, f"took {stopped_s:.1f} s to stop"
    # rattler's threads went on unpacking after the cancel; none of it may be left behind
    time.sleep(0.5)
    # (the envs directory create made for it goes too)
    assert not prefix.parent.exists() or sorted(p.name for p in prefix.parent.iterdir()) == []


def test_removing_a_partial_build_stops_a_thread_still_writing_into_it(tmp_path: Path) -> None:
    """What rattler's worker does after a cancel, reduced to what matters and made deterministic:
    a thread that keeps creating directories and files by path under the partial build."""
    work = tmp_path / f".dlsetup-partial-env-{os.getpid()}"
    (work / "pkgs").mkdir(parents=True)
    errors: list[OSError] = []
    busy = threading.Event()

    def unpack() -> None:
        try:
            for i in itertools.count():
                directory = work / "pkgs" / "pkg" / f"d{i % 10}"
                directory.mkdir(parents=True, exist_ok=True)  # like Rust's create_dir_all
                (directory / f"f{i}").write_bytes(b"x")
                if i == 100:
                    busy.set()
        except OSError as exc:
            errors.append(exc)

    worker = threading.Thread(target=unpack, daemon=True)
    worker.start()
    assert busy.wait(10)
    remove_partial(work)
    worker.join(10)
    assert not worker.is_alive(), "the writer was not stopped"
    # its next path under the partial build hits the blocker file (or, when the removal overtook
    # it between its mkdir and its write, the directory it just made is already gone)
    assert isinstance(errors[0], (NotADirectoryError, FileExistsError, FileNotFoundError)), errors
    # only the empty blocker file is left while this process lives; the next create removes it
    assert [(p.name, p.is_file(), p.stat().st_size) for p in tmp_path.iterdir()] == [
        (work.name, True, 0)
    ]
    assert clean_leftovers(tmp_path / "env") == [work]
    assert list(tmp_path.iterdir()) == []


def _idle(process: Any) -> bool:
    """Whether a process sleeps and used no CPU time over 0.5 s."""
    before = sum(process.cpu_times()[:2])
    time.sleep(0.5)
    return bool(process.status() == "sleeping" and sum(process.cpu_times()[:2]) == before)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT and process groups are POSIX")
def test_ctrl_c_during_the_smoke_test_keeps_the_env_and_ends_the_framework_workers(
    runnable_lock: Path, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    import psutil

    prefix = tmp_path / "envs" / "smoke-interrupted"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "dlsetup", "create", "--from-lock", str(runnable_lock),
            "--prefix", str(prefix), "--no-jupyter",
        ],
        # the workers hang on their device, so only ending them stops them
        env={**os.environ, **isolated_dirs, **fault_env("*:hang=cpu")},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **SIGNALLED,
    )  # fmt: skip
    create = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    workers: list[psutil.Process] = []
    while not workers:  # the smoke test's framework workers are running
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the smoke workers never started"
        with contextlib.suppress(psutil.Error):
            workers = [
                p
                for p in create.children(recursive=True)
                if any(arg.endswith("_worker.py") for arg in p.cmdline())
            ]
        time.sleep(0.05)
    # one worker past its imports and first output, inside the injected hang (a worker still
    # starting up would die of the broken pipe once the smoke process is gone, proving nothing)
    while not any(_idle(w) for w in workers):
        assert time.monotonic() < deadline, "the smoke workers never reached the hang"
    descendants = create.children(recursive=True)
    proc.send_signal(signal.SIGINT)  # to create alone, as `kill -INT` does
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.endswith("Interrupted.\n")
    _, alive = psutil.wait_procs(descendants, timeout=10)
    left = [p.cmdline() for p in alive]
    for p in alive:  # do not leave hour-long sleepers behind when this fails
        p.kill()
    assert left == [], f"left running: {left}"
    # the environment was complete before the smoke test began: it stays, without a smoke record
    assert (prefix / "conda-meta" / "pytorch-2.13.0-cpu_mkl_py312h0_100.json").is_file()
    assert not (prefix / "etc" / "dlsetup" / "smoke.json").exists()


def _base_python_without_frameworks() -> str | None:
    """The interpreter this venv was made from, when it has neither torch nor tensorflow."""
    base = getattr(sys, "_base_executable", None)
    if not base or sys.prefix == sys.base_prefix:  # not in a venv: the same site-packages
        return None
    probe = subprocess.run(
        [base, "-c", "import importlib.util as u; print(u.find_spec('torch') or u.find_spec('tensorflow'))"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    return base if probe.returncode == 0 and probe.stdout.strip() == "None" else None


@pytest.mark.skipif(sys.platform == "win32", reason="the runnable python stand-in is a sh script")
def test_an_env_whose_python_has_no_framework_fails_smoke_with_the_smoke_error(
    tmp_path: Path,
) -> None:
    base = _base_python_without_frameworks()
    if base is None:
        pytest.skip("needs a base interpreter without torch and tensorflow")
    from tests.envs.channel import build_channel

    url = build_channel(tmp_path / "channel", python_exec=base)
    code, out = invoke(*lock_args("pytorch", url, tmp_path / "locks"))
    assert code == 0, out
    prefix = tmp_path / "envs" / "no-framework"
    code, out = invoke(
        "create", "--from-lock", str(tmp_path / "locks" / "pytorch-cpu.conda-lock.yml"),
        "--prefix", str(prefix), "--json",
    )  # fmt: skip
    assert code == 1, out
    doc = json.loads(out)
    jsonschema.validate(doc, load_schema("dlsetup.create"))
    smoke = doc["data"]["smoke"]
    python = prefix / "bin" / "python"
    assert smoke["status"] == "failed"
    assert smoke["exit_code"] == 3  # dlsetup smoke's "missing" status: no report was made
    assert smoke["reason"].startswith("no framework to test: ")
    assert str(python) in smoke["reason"]
    assert smoke["failures"] == [smoke["reason"]]
    assert smoke["record"] is None
    assert smoke["rerun"] == f"dlsetup smoke --python {python}"
    assert (prefix / "conda-meta" / "pytorch-2.13.0-cpu_mkl_py312h0_100.json").is_file()
