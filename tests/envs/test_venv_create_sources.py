"""``create --from-lock`` installs from what the lock recorded, not from the default index the
user's uv.toml names today.

A lock made without ``--index-url`` through a uv.toml whose default index is A records A; a
month later the uv.toml names B. uv installs each wheel from the URL in the lock (B is not
even asked: checked over HTTP before this change too), so the wheels were A's already; what B
governed was what uv got beside them: B as its default index, where the build requirements of
an ``--allow-build`` sdist come from. Now uv gets A (with the credentials configured for A now,
if any; a lock stores none) and no index the lock does not use.

Hermetic: local indexes (:mod:`tests.support.wheels`), the PyTorch-shaped one of
:mod:`tests.support.torch_index`, the real uv, the CLI in a subprocess.
"""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.envs.test_venv_build_isolation import helper_index, sdist_needing_a_helper
from tests.support.proc import REPO, run_cli
from tests.support.torch_index import LINUX, NUMPY, TorchIndex
from tests.support.wheels import Wheel, build_index


def _uv_toml(config: Path, default_index: str) -> None:
    (config / "uv").mkdir(parents=True, exist_ok=True)
    (config / "uv" / "uv.toml").write_text(
        f'[[index]]\nurl = "{default_index}"\ndefault = true\n', encoding="utf-8"
    )


def _index_b(root: Path, *, holds_numpy: bool) -> str:
    """B: numpy of the same version, another build (a file A's has not), or no numpy at all."""
    wheels = [Wheel("ipykernel", "7.1.0", ("numpy>=1.24",))]
    if holds_numpy:
        wheels.append(
            Wheel(
                "numpy",
                NUMPY,
                tag=f"cp311-cp311-{LINUX}",
                requires_python=">=3.10",
                files={"numpy/from_b.py": b"INDEX = 'B'\n"},
            )
        )
    return build_index(root, wheels)


def _lock_cpu(
    torch_index: TorchIndex, out: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``lock pytorch --backend venv --variant cpu`` for linux-64 from ``torch_index``, with
    ``env``'s configuration (its default index): the run and the lock written."""
    made = run_cli(
        "lock", "pytorch", "--backend", "venv", "--variant", "cpu", "--platform", "linux-64",
        "--python-version", "3.11", "--torch-index-url", torch_index.torch_url, "--output",
        str(out), env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return made, out / "pylock.pytorch-cpu.toml"


def _create_allowing_needy(tmp_path: Path, lock: Path, default_index: str) -> None:
    """``create --from-lock LOCK --allow-build needy`` with a uv.toml naming ``default_index`` as
    today's default index; it must succeed."""
    config = tmp_path / "config"
    _uv_toml(config, default_index)
    env = {"PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": str(config), "PIP_CONFIG_FILE": "/dev/null"}
    proc = run_cli(
        "create", "--from-lock", str(lock), "--prefix", str(tmp_path / "env"), "--no-smoke",
        "--no-jupyter", "--allow-build", "needy", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("holds_numpy", [True, False], ids=["another-build", "lacking-it"])
def test_create_installs_the_wheels_of_the_index_the_lock_recorded(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str], holds_numpy: bool
) -> None:
    config = tmp_path / "config"
    env = {**isolated_dirs, "XDG_CONFIG_HOME": str(config), "PIP_CONFIG_FILE": "/dev/null"}
    _uv_toml(config, torch_index.pypi_url)  # A, the default index when the lock is made
    _, lock = _lock_cpu(torch_index, tmp_path / "out", env)
    assert f'index_url = "{torch_index.pypi_url}"' in lock.read_text()
    _uv_toml(config, _index_b(tmp_path / "b", holds_numpy=holds_numpy))  # B, a month later
    prefix = tmp_path / "env"
    built = run_cli(
        "create", "--from-lock", str(lock), "--prefix", str(prefix), "--no-jupyter",
        "--no-smoke", env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    [installed] = prefix.glob(f"lib/python*/site-packages/numpy-{NUMPY}.dist-info/RECORD")
    [wheel_a] = (torch_index.root / "pypi" / "files").glob(f"numpy-{NUMPY}-cp311-cp311-{LINUX}.whl")
    with zipfile.ZipFile(wheel_a) as archive:
        record_a = archive.read(f"numpy-{NUMPY}.dist-info/RECORD").decode()
    # A's files with A's hashes (uv adds its own lines for what it writes at install)
    assert set(record_a.splitlines()) <= set(installed.read_text().splitlines())
    assert not any(prefix.glob("lib/python*/site-packages/numpy/from_b.py"))


def test_allowed_builds_take_their_requirements_from_the_recorded_index_not_todays_default(
    tmp_path: Path,
) -> None:
    """A lock made without --index-url records its index (buildhelp 1.0); today's uv.toml names
    another default index (buildhelp 2.0): the allowed sdist builds with 1.0. Before, 2.0."""
    from tests.security.locks import HOST_PYTHON, write_pylock

    recorded = helper_index(tmp_path / "recorded", "1.0")
    today = helper_index(tmp_path / "today", "2.0")
    marker = tmp_path / "helper-version"
    lock = write_pylock(
        tmp_path / "pylock.toml", [sdist_needing_a_helper(tmp_path / "s", marker)],
        python=HOST_PYTHON,
    )  # fmt: skip
    with lock.open("a", encoding="utf-8") as fh:  # made without --index-url: no request for it
        fh.write(f'index_url = "{recorded}"\nrequest = {{ target = "pytorch" }}\n')
    _create_allowing_needy(tmp_path, lock, today)
    assert marker.read_text(encoding="utf-8") == "1.0"


def test_a_lock_that_records_no_index_still_gets_the_configured_default(tmp_path: Path) -> None:
    """A pylock another tool wrote names no index: the configured default index serves the
    build requirements, as before (buildhelp 2.0 from today's uv.toml)."""
    from tests.security.locks import HOST_PYTHON, write_pylock

    today = helper_index(tmp_path / "today", "2.0")
    marker = tmp_path / "helper-version"
    lock = write_pylock(
        tmp_path / "pylock.toml", [sdist_needing_a_helper(tmp_path / "s", marker)],
        python=HOST_PYTHON,
    )  # fmt: skip
    _create_allowing_needy(tmp_path, lock, today)
    assert marker.read_text(encoding="utf-8") == "2.0"


def test_the_recorded_index_gets_the_password_configured_for_it_now_and_shows_it_nowhere(
    torch_index: TorchIndex, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """A behind basic auth, its password in the uv.toml when the lock is made; later the uv.toml
    names B as the default and A's password is in pip.conf: create installs A's wheels with
    it, and neither the lock nor any output holds it."""
    from tests.support.http_server import PASSWORD, USER, basic_auth_server

    config = tmp_path / "config"
    pip_conf = tmp_path / "pip.conf"
    env = {**isolated_dirs, "XDG_CONFIG_HOME": str(config), "PIP_CONFIG_FILE": str(pip_conf)}
    pip_conf.write_text("[global]\n", encoding="utf-8")
    with basic_auth_server(torch_index.root) as (url, seen):
        a = url.replace("http://", f"http://{USER}:{PASSWORD}@") + "/pypi/simple"
        _uv_toml(config, a)
        made, lock = _lock_cpu(torch_index, tmp_path / "out", env)
        _uv_toml(config, _index_b(tmp_path / "b", holds_numpy=True))
        pip_conf.write_text(f"[global]\nextra-index-url = {a}\n", encoding="utf-8")
        seen.clear()
        built = run_cli(
            "create", "--from-lock", str(lock), "--prefix", str(tmp_path / "env"),
            "--no-jupyter", "--no-smoke", env=env,
        )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert seen and None not in seen  # every request to A carried the credentials
    for shown in (made.stdout, made.stderr, built.stdout, built.stderr, lock.read_text()):
        assert PASSWORD not in shown
    assert not any((tmp_path / "env").glob("lib/python*/site-packages/numpy/from_b.py"))
