"""The PyPI phase of ``dlsetup create``: uv installs exactly the locked wheels, hashes required,
into the staged prefix; a tampered file, a wheel for another platform, an sdist, an interruption
or a SIGKILL leave the target as it was (issue 9).

Real uv, real wheels (:mod:`tests.support.wheels`), the real CLI in a subprocess. The
interruption tests serve the wheels over a local HTTP server that holds one download open, so
the signal arrives while uv is at work (the test hook lives here, not in dlsetup).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from tests.envs.lock_builders import (
    CHECKOUT,
    LINUX_ONLY,
    Fixture,
    build_fixture,
    make_env,
    temporaries,
    write_conda_lock,
    write_pixi_lock,
)
from tests.envs.lock_builders import create_from_lock as create
from tests.support.http_server import QuietHandler, basic_auth_server, serve
from tests.support.proc import REPO
from tests.support.signals import SIGNALLED
from tests.support.wheels import Wheel, build_wheel

pytestmark = LINUX_ONLY


@pytest.fixture
def fx(tmp_path: Path) -> Fixture:
    return build_fixture(tmp_path / "fx")


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else b""
        for p in sorted(root.rglob("*"))
    }


def with_pip_entry(lock: Path, name: str, **changes: str) -> None:
    """Change the conda-lock file's PyPI entry ``name`` (url, sha256)."""
    data = yaml.safe_load(lock.read_text())
    for entry in data["package"]:
        if entry["manager"] == "pip" and entry["name"] == name:
            if "url" in changes:
                entry["url"] = changes["url"]
            if "sha256" in changes:
                entry["hash"]["sha256"] = changes["sha256"]
    lock.write_text(yaml.safe_dump(data, sort_keys=False))


# --- refused before or by uv ------------------------------------------------------------------


def test_a_tampered_wheel_is_refused_naming_the_package_and_nothing_is_installed(
    fx: Fixture, tmp_path: Path
) -> None:
    lock = write_conda_lock(fx, tmp_path / "x.conda-lock.yml")
    prefix = tmp_path / "envs" / "env"
    make_env(prefix)
    before = snapshot(prefix)
    # the file at the locked URL is replaced after locking: same name, other content
    build_wheel(
        fx.wheels["tinybeta"].parent, Wheel("tinybeta", "0.5", files={"tinybeta/x.py": b"1"})
    )
    code, _, err = create(lock, prefix, "--force")
    assert code == 4, err
    assert "Error: hash mismatch for the PyPI package tinybeta 0.5 of x.conda-lock.yml" in err
    assert "Traceback" not in err
    assert snapshot(prefix) == before
    assert temporaries(prefix.parent) == []


def test_the_same_lock_installs_once_the_file_is_the_locked_one(
    fx: Fixture, tmp_path: Path
) -> None:
    """The control of the test above: only the hash differs between the two runs."""
    lock = write_conda_lock(fx, tmp_path / "x.conda-lock.yml")
    code, _, err = create(lock, tmp_path / "env")
    assert code == 0, err
    assert (tmp_path / "env" / "lib" / "python3.11" / "site-packages" / "tinybeta").is_dir()


def test_a_lock_whose_recorded_hash_differs_is_refused(fx: Fixture, tmp_path: Path) -> None:
    lock = write_conda_lock(fx, tmp_path / "x.conda-lock.yml")
    with_pip_entry(lock, "tinyalpha", sha256="ab" * 32)
    code, _, err = create(lock, tmp_path / "env")
    assert code == 4, err
    assert "hash mismatch for the PyPI package tinyalpha 1.0" in err
    assert not (tmp_path / "env").exists()


def test_a_wheel_for_another_platform_fails_naming_the_package_before_any_download(
    fx: Fixture, tmp_path: Path
) -> None:
    mac = build_wheel(
        tmp_path / "mac", Wheel("tinymac", "1.0", tag="cp311-cp311-macosx_11_0_arm64")
    )
    lock = write_conda_lock(fx, tmp_path / "x.conda-lock.yml")
    with_pip_entry(lock, "tinybeta", url=mac.as_uri())
    code, _out, err = create(lock, tmp_path / "env")
    assert code == 4, err
    assert (
        "Error: the PyPI package tinybeta 0.5 has no wheel for linux-64: the lock "
        f"{lock} names tinymac-1.0-cp311-cp311-macosx_11_0_arm64.whl"
    ) in " ".join(err.split())
    assert "Verifying package hashes" not in err  # refused before the conda part too
    assert not (tmp_path / "env").exists()


def test_a_wheel_for_another_python_fails_naming_the_package_and_the_python(
    fx: Fixture, tmp_path: Path
) -> None:
    """The environment's Python is the lock's python conda package (3.11 here)."""
    import hashlib

    cp312 = build_wheel(
        tmp_path / "w", Wheel("tinybeta", "0.5", tag="cp312-cp312-manylinux_2_17_x86_64")
    )
    lock = write_conda_lock(fx, tmp_path / "x.conda-lock.yml")
    with_pip_entry(
        lock, "tinybeta", url=cp312.as_uri(), sha256=hashlib.sha256(cp312.read_bytes()).hexdigest()
    )
    code, _, err = create(lock, tmp_path / "env")
    assert code == 4, err
    assert "the PyPI package tinybeta 0.5 has no wheel for Python 3.11." in " ".join(err.split())
    assert not (tmp_path / "env").exists()


def test_a_requires_python_the_environment_does_not_meet_is_refused(
    fx: Fixture, tmp_path: Path
) -> None:
    lock = write_pixi_lock(fx, tmp_path / "pixi.lock")
    data = yaml.safe_load(lock.read_text())
    for entry in data["packages"]:
        if entry.get("name") == "tinybeta":
            entry["requires_python"] = ">=3.12"
    lock.write_text(yaml.safe_dump(data, sort_keys=False))
    code, _, err = create(lock, tmp_path / "env")
    assert code == 4, err
    assert "tinybeta 0.5 requires Python >=3.12; the environment's is 3.11." in " ".join(
        err.split()
    )


def test_a_linux_wheel_fits_linux_64(fx: Fixture, tmp_path: Path) -> None:
    """The control: a manylinux x86_64 wheel of the same shape is installed."""
    linux = build_wheel(
        tmp_path / "lin", Wheel("tinybeta", "0.5", tag="cp311-cp311-manylinux_2_17_x86_64")
    )
    import hashlib

    lock = write_conda_lock(fx, tmp_path / "x.conda-lock.yml")
    with_pip_entry(
        lock, "tinybeta", url=linux.as_uri(), sha256=hashlib.sha256(linux.read_bytes()).hexdigest()
    )
    code, _, err = create(lock, tmp_path / "env")
    assert code == 0, err


def test_a_source_distribution_is_refused_naming_it(fx: Fixture, tmp_path: Path) -> None:
    sdist = tmp_path / "tinybeta-0.5.tar.gz"
    sdist.write_bytes(b"not built")
    lock = write_conda_lock(fx, tmp_path / "x.conda-lock.yml")
    with_pip_entry(lock, "tinybeta", url=sdist.as_uri())
    code, _, err = create(lock, tmp_path / "env")
    assert code == 4, err
    assert "tinybeta 0.5 in" in err and "a source distribution" in err


# --- interrupted while uv works -----------------------------------------------------------------


class _Holding(QuietHandler):
    """Serves a directory; a request whose path has :attr:`held` in it waits until released."""

    held = ""
    requested: threading.Event
    release: threading.Event

    def do_GET(self) -> None:
        if self.held and self.held in self.path:
            self.requested.set()
            self.release.wait(60)
        super().do_GET()


@contextlib.contextmanager
def holding_server(directory: Path, held: str) -> Iterator[tuple[str, type[_Holding]]]:
    """An HTTP server over ``directory``: its URL, and the handler class with its two events."""
    events = {"requested": threading.Event(), "release": threading.Event()}
    with serve(directory, _Holding, held=held, **events) as (url, handler):
        try:
            yield url, handler
        finally:
            handler.release.set()  # before the server stops: a held request ends first


def _pixi_over_http(fx: Fixture, tmp_path: Path, base: str) -> Path:
    urls = {name: f"{base}/{path.name}" for name, path in fx.wheels.items()}
    return write_pixi_lock(fx, tmp_path / "pixi.lock", urls=urls)


def _start(lock: Path, prefix: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, **CHECKOUT, "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "dlsetup", "create", "--from-lock", str(lock), "--prefix",
         str(prefix), "--no-smoke", "--no-jupyter", *extra],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        **SIGNALLED,
    )  # fmt: skip


def _wait_for_uv(proc: subprocess.Popen[str], requested: threading.Event) -> list[int]:
    deadline = time.monotonic() + 60
    while not requested.wait(0.1):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(proc.communicate(timeout=10))
    uv = [p.pid for p in psutil.Process(proc.pid).children(recursive=True) if "uv" in p.name()]
    assert uv, "uv is not running"
    return uv


def _gone(pids: list[int], within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_while_uv_downloads_keeps_the_old_environment(
    fx: Fixture, tmp_path: Path, signum: int, code: int
) -> None:
    prefix = tmp_path / "envs" / "env"
    make_env(prefix)
    before = snapshot(prefix)
    with holding_server(fx.wheels["tinybeta"].parent, "tinybeta") as (base, handler):
        lock = _pixi_over_http(fx, tmp_path, base)
        proc = _start(lock, prefix, "--force")
        uv = _wait_for_uv(proc, handler.requested)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Installing 2 PyPI packages with uv" in err
    assert "Traceback" not in err
    assert _gone(uv), "uv outlived create"
    assert snapshot(prefix) == before
    assert temporaries(prefix.parent) == []


def test_sigkill_while_uv_downloads_leaves_the_target_absent_and_the_next_run_cleans_up(
    fx: Fixture, tmp_path: Path
) -> None:
    prefix = tmp_path / "envs" / "env"
    with holding_server(fx.wheels["tinybeta"].parent, "tinybeta") as (base, handler):
        lock = _pixi_over_http(fx, tmp_path, base)
        proc = _start(lock, prefix)
        uv = _wait_for_uv(proc, handler.requested)
        proc.kill()
        proc.communicate(timeout=30)
        assert _gone(uv), "uv outlived a SIGKILL of create (PR_SET_PDEATHSIG)"
        assert not prefix.exists()
        assert [t for t in temporaries(prefix.parent) if t.startswith(".dlsetup-partial-")]
        handler.release.set()
        code, out, err = create(lock, prefix, "--json")
    assert code == 0, err
    assert json.loads(out)["data"]["pypi_packages"] == 2
    assert temporaries(prefix.parent) == []
    assert (prefix / "lib" / "python3.11" / "site-packages" / "tinybeta").is_dir()


# --- credentials ----------------------------------------------------------------------------------


def test_a_token_in_a_wheel_url_is_used_but_never_printed_or_written(
    fx: Fixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cret-TOKEN-9a"
    wheels = fx.wheels["tinybeta"].parent
    with basic_auth_server(wheels, "alice", secret, realm="wheels") as (base, _):
        lock = write_conda_lock(fx, tmp_path / "x.conda-lock.yml")
        where = base.replace("http://", "http://alice:${WHEEL_TOKEN}@")
        url = f"{where}/tinybeta-0.5-py3-none-any.whl"
        with_pip_entry(lock, "tinybeta", url=url)
        monkeypatch.delenv("WHEEL_TOKEN", raising=False)
        code, _, err = create(lock, tmp_path / "unset")
        assert code == 2, err
        assert "needs the environment variable WHEEL_TOKEN, which is not set" in err
        assert not (tmp_path / "unset").exists()
        monkeypatch.setenv("WHEEL_TOKEN", secret)
        prefix = tmp_path / "env"
        code, out, err = create(lock, prefix, "--json")
    assert code == 0, err
    assert json.loads(out)["data"]["pypi_packages"] == 3
    assert secret not in out + err
    written = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert written == []  # neither the environment, the lock copy, nor any cache holds it
    direct = prefix / "lib" / "python3.11" / "site-packages" / "tinybeta-0.5.dist-info"
    assert (direct / "direct_url.json").is_file()
