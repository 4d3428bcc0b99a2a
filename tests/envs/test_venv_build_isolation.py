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
