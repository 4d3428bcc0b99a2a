"""A user's uv settings never turn the build isolation of ``--allow-build`` off (venv backend).

``create --from-lock pylock.toml --allow-build NAME`` lets uv build exactly the named sdists, in
uv's isolated build environment: the sdist's backend runs in a fresh environment, never in the
venv being built, whose packages it could otherwise import and alter. uv reads
``no-build-isolation`` from the user's ``uv.toml`` (``$XDG_CONFIG_HOME/uv/uv.toml``, or the file
``UV_CONFIG_FILE`` names), top level or under ``[pip]``; dlsetup's uv runs with ``--no-config``
and without ``UV_NO_BUILD_ISOLATION`` (:data:`dlsetup.envs.pypi.uv.UV_INPUT_VARIABLES`), so the
build stays isolated. The sdist is :mod:`tests.envs.test_allow_build`'s hostile one, whose
in-tree backend records the ``sys.prefix`` it ran in; the real uv builds it offline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.envs.lock_builders import LINUX_ONLY
from tests.envs.test_allow_build import sdist_only, site_has

pytestmark = LINUX_ONLY


@pytest.mark.parametrize(
    ("where", "setting"),
    [("XDG_CONFIG_HOME", "no-build-isolation = true\n"),
     ("UV_CONFIG_FILE", "[pip]\nno-build-isolation = true\n"),
     ("UV_NO_BUILD_ISOLATION", "")],
)  # fmt: skip
def test_a_users_no_build_isolation_does_not_reach_the_allowed_build(
    where: str, setting: str, tmp_path: Path
) -> None:
    from tests.security.locks import HOST_PYTHON, wheel_package, write_pylock
    from tests.support.proc import REPO, run_cli

    marker = tmp_path / "setup-py-ran"
    packages = [wheel_package(tmp_path / "w"), sdist_only(tmp_path / "s", "evila", marker)]
    lock = write_pylock(tmp_path / "pylock.toml", packages, python=HOST_PYTHON)
    config = tmp_path / "config"
    env = {"PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": str(config)}
    if where == "XDG_CONFIG_HOME":
        (config / "uv").mkdir(parents=True)
        (config / "uv" / "uv.toml").write_text(setting, encoding="utf-8")
    elif where == "UV_CONFIG_FILE":
        config.mkdir()
        (config / "mine.toml").write_text(setting, encoding="utf-8")
        env["UV_CONFIG_FILE"] = str(config / "mine.toml")
    else:
        env["UV_NO_BUILD_ISOLATION"] = "1"
    prefix = tmp_path / "env"
    proc = run_cli(
        "create", "--from-lock", str(lock), "--prefix", str(prefix), "--no-smoke",
        "--no-jupyter", "--allow-build", "evila", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert set(marker.read_text().split()) == {"evila"}
    # the backend ran in uv's fresh build environment, not in the venv being built
    prefixes = set(Path(str(marker) + ".prefix").read_text().split())
    assert prefixes and not any(".dlsetup-partial-env-" in p for p in prefixes), prefixes
    assert site_has(prefix, "evila")


_NEEDS_HELPER = """\
import os
import shutil

import buildhelp

with open({marker!r}, "w") as fh:  # the build requirement's release the build ran with
    fh.write(buildhelp.VERSION)


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    shutil.copy("{wheel}", os.path.join(wheel_directory, "{wheel}"))
    return "{wheel}"
"""


def sdist_needing_a_helper(
    directory: Path, marker: Path, requires: str = "buildhelp"
) -> dict[str, object]:
    """A ``[[packages]]`` table with only the sdist of ``needy 1.0``, whose in-tree backend
    imports its build requirement ``buildhelp`` (``requires``, its PEP 508 line) and writes that
    one's release to ``marker``."""
    import io
    import tarfile

    from tests.security.locks import sha256
    from tests.support.wheels import Wheel, build_wheel

    wheel = build_wheel(directory / "built", Wheel("needy", "1.0"))
    members = {
        "backend.py": _NEEDS_HELPER.format(marker=str(marker), wheel=wheel.name).encode(),
        "pyproject.toml": (
            f'[build-system]\nrequires = ["{requires}"]\nbuild-backend = "backend"\n'
            'backend-path = ["."]\n[project]\nname = "needy"\nversion = "1.0"\n'
        ).encode(),
        "PKG-INFO": b"Metadata-Version: 2.1\nName: needy\nVersion: 1.0\n",
        wheel.name: wheel.read_bytes(),
    }
    path = directory / "needy-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(f"needy-1.0/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    sdist = {"name": path.name, "url": path.resolve().as_uri(), "hashes": {"sha256": sha256(path)}}
    return {"name": "needy", "version": "1.0", "sdist": sdist}


def needy_lock(tmp_path: Path, index: str) -> tuple[Path, Path]:
    """A pylock.toml with only the sdist of ``needy`` (build requirement ``buildhelp``), made
    with ``--index-url INDEX``; and the marker its backend writes."""
    from tests.security.locks import HOST_PYTHON, write_pylock

    marker = tmp_path / "helper-version"
    lock = write_pylock(
        tmp_path / "pylock.toml", [sdist_needing_a_helper(tmp_path / "s", marker)],
        python=HOST_PYTHON,
    )  # fmt: skip
    with lock.open("a", encoding="utf-8") as fh:
        fh.write(f'index_url = "{index}"\nrequest = {{ index_url = "{index}" }}\n')
    return lock, marker


def helper_index(root: Path, version: str) -> str:
    """An index holding ``buildhelp VERSION`` as a wheel; its ``file://`` URL."""
    from tests.support.wheels import Wheel, build_index

    files = {"buildhelp/__init__.py": f'VERSION = "{version}"\n'.encode()}
    return build_index(root, [Wheel("buildhelp", version, files=files)])


@pytest.mark.parametrize("where", ["UV_INDEX", "UV_EXTRA_INDEX_URL", "uv.toml"])
def test_build_requirements_come_from_the_locks_index_not_the_callers_uv_settings(
    where: str, tmp_path: Path
) -> None:
    """A lock made with --index-url records that index; ``create --allow-build`` builds with the
    build requirement from it, never from an index the caller's uv settings name, which holds a
    newer release."""
    from tests.support.proc import REPO, run_cli

    chosen = helper_index(tmp_path / "chosen", "1.0")
    other = helper_index(tmp_path / "other", "2.0")
    lock, marker = needy_lock(tmp_path, chosen)
    config = tmp_path / "config"
    env = {"PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": str(config)}
    if where == "uv.toml":
        (config / "uv").mkdir(parents=True)
        (config / "uv" / "uv.toml").write_text(f'extra-index-url = ["{other}"]\n', "utf-8")
    else:
        env[where] = other
    prefix = tmp_path / "env"
    proc = run_cli(
        "create", "--from-lock", str(lock), "--prefix", str(prefix), "--no-smoke",
        "--no-jupyter", "--allow-build", "needy", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text(encoding="utf-8") == "1.0"
