"""Users' locks mean what conda-lock, pixi and uv make of them (issue 21, items 3, 4 and 5).

* **md5-only packages** (conda-lock's own test locks; pixi.lock entries from a channel that never
  published sha256, such as the old ``nvidia`` label) are verified by their md5, as conda,
  conda-lock and pixi verify them, and create says once that md5 is the weaker hash.
* **VCS and source distributions**: a git source is named as one, with what to do; every sdist of
  a lock is named in one error; ``--allow-build NAME`` builds exactly the named ones with uv, after
  their hashes are verified (:mod:`tests.envs.test_allow_build`).
* **PEP 751 by content**: a PEP 751 lock under another name than ``pylock.toml`` /
  ``pylock.NAME.toml`` is told how to rename, never called unreadable.

The locks are written by the real tools' code or in their exact shapes: conda-lock's writer
(:func:`tests.envs.lock_builders.write_conda_lock`), pixi's v6 layout
(:func:`tests.envs.lock_builders.write_pixi_lock_v6`), and ``uv export --format pylock.toml``
run here against a local index.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.envs.lock_builders import (
    LINUX_ONLY,
    PLATFORM,
    Fixture,
    write_conda_lock,
    write_pixi_lock_v6,
)
from tests.envs.lock_builders import create_from_lock as create

pytestmark = LINUX_ONLY

MD5_NOTE = re.compile(
    r"(\d+) packages of (\S+) \(([^)]*)\) have an md5 and no sha256: each is verified by its "
    r"md5, the weaker hash \(as conda, conda-lock and pixi verify it\)"
)


def conda_meta(prefix: Path) -> set[str]:
    return {json.loads(p.read_text())["name"] for p in (prefix / "conda-meta").glob("*.json")}


# --- item 3: md5-only packages ------------------------------------------------------------------


def test_a_conda_lock_v1_with_md5_only_installs_verified_by_md5_said_once(
    fx: Fixture, tmp_path: Path
) -> None:
    """conda-lock's writer with ``hash: {md5: ...}`` and no sha256 (its own test locks' shape):
    installed, each archive checked against its md5, and one line (not one per package) says
    md5 is the weaker hash."""
    lock = write_conda_lock(fx, tmp_path / "md5.conda-lock.yml", pip=False, sha256=False)
    conda = [p for p in yaml.safe_load(lock.read_text())["package"] if p["manager"] == "conda"]
    assert conda and all(set(p["hash"]) == {"md5"} for p in conda)
    code, _out, err = create(lock, tmp_path / "env")
    assert code == 0, err
    notes = MD5_NOTE.findall(err)
    assert len(notes) == 1, err
    assert notes[0][:2] == ("4", "md5.conda-lock.yml")
    assert "has no sha256" not in err and "regenerate" not in err
    assert conda_meta(tmp_path / "env") == {"python", "pip", "tinyconda", "tinyconda-dev"}


def test_an_md5_that_differs_from_the_archive_is_refused(fx: Fixture, tmp_path: Path) -> None:
    """The md5 is really checked: a lock whose md5 is not the archive's is refused (exit 4)."""
    lock = write_conda_lock(fx, tmp_path / "md5.conda-lock.yml", pip=False, sha256=False)
    data = yaml.safe_load(lock.read_text())
    entry = next(p for p in data["package"] if p["name"] == "tinyconda")
    real = entry["hash"]["md5"]
    entry["hash"]["md5"] = "0" * 32
    lock.write_text(yaml.safe_dump(data, sort_keys=False))
    code, _out, err = create(lock, tmp_path / "env")
    assert code == 4, err
    assert re.search(
        rf"md5 mismatch for tinyconda-1\.0-pyhd8ed1ab_0\.tar\.bz2: the lock md5\.conda-lock\.yml "
        rf"says 0{{32}}, the archive at \S+ has {real}; refused",
        err,
    ), err
    assert not (tmp_path / "env").exists()


def test_a_pixi_lock_v6_with_md5_only_installs_verified_by_md5(fx: Fixture, tmp_path: Path) -> None:
    lock = write_pixi_lock_v6(fx, tmp_path / "pixi.lock", sha256=False)
    conda = [p for p in yaml.safe_load(lock.read_text())["packages"] if "conda" in p]
    assert conda and all("md5" in p and "sha256" not in p for p in conda)
    code, _out, err = create(lock, tmp_path / "env")
    assert code == 0, err
    notes = MD5_NOTE.findall(err)
    assert len(notes) == 1 and notes[0][:2] == ("3", "pixi.lock"), err
    assert conda_meta(tmp_path / "env") == {"python", "pip", "tinyconda"}


def test_a_package_with_neither_hash_is_still_refused(fx: Fixture, tmp_path: Path) -> None:
    lock = write_pixi_lock_v6(fx, tmp_path / "pixi.lock", sha256=False)
    text = lock.read_text()
    md5 = next(p for p in yaml.safe_load(text)["packages"] if "conda" in p)["md5"]
    lock.write_text(text.replace(f"  md5: {md5}\n", ""))
    code, _out, err = create(lock, tmp_path / "env")
    assert code == 4, err
    assert "has no hash (neither sha256 nor md5); unverifiable packages are refused" in err
    assert not (tmp_path / "env").exists()


# --- item 5: PEP 751 by content, not by name ------------------------------------------------------


def uv_export_pylock(fx: Fixture, directory: Path) -> Path:
    """``uv lock`` then ``uv export --format pylock.toml`` of a project needing ``tinyalpha``,
    against a local index of the fixture's wheels: the pylock.toml uv itself writes."""
    import subprocess

    from dlsetup.envs.pypi.uv import uv_binary
    from tests.envs.lock_builders import WHEELS
    from tests.support.wheels import build_index

    index = build_index(directory / "index", WHEELS)
    project = directory / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "proj"\nversion = "0.1"\nrequires-python = ">=3.11"\n'
        'dependencies = ["tinyalpha"]\n[tool.uv]\npackage = false\n'
    )
    env = {"PATH": "/usr/bin:/bin", "UV_NO_PROGRESS": "1", "HOME": str(directory)}
    common = ["--no-config", "--index-url", index, "--cache-dir", str(directory / "uv-cache"),
              "--python", sys.executable]  # fmt: skip
    for args in (["lock"], ["export", "--format", "pylock.toml", "-o", "pylock.toml"]):
        subprocess.run([uv_binary(), *args, *common], cwd=project, env=env, check=True,
                       capture_output=True)  # fmt: skip
    lock = project / "pylock.toml"
    assert 'created-by = "uv"' in lock.read_text()
    return lock


@pytest.mark.parametrize(
    ("name", "renamed"),
    [("maia3.pylock.toml", "pylock.maia3.toml"), ("lock.toml", "pylock.toml")],
)
def test_a_pep_751_lock_under_another_name_is_told_how_to_rename(
    fx: Fixture, tmp_path: Path, name: str, renamed: str
) -> None:
    """uv's own export, under a name PEP 751 does not allow: recognised by its content, refused
    with the name to give it (exit 2, before any venv is made), never called unreadable; under
    that name it builds."""
    from dlsetup.envs.lockfiles.formats import read_locked_environment
    from dlsetup.errors import InputError

    exported = uv_export_pylock(fx, tmp_path)
    lock = tmp_path / name
    lock.write_bytes(exported.read_bytes())
    code, _out, err = create(lock, tmp_path / "env")
    assert code == 2, err
    assert (
        f"Error: {lock} is a PEP 751 lock; PEP 751 names a lock pylock.toml or "
        f"pylock.NAME.toml: rename it to {renamed}" in err
    ), err
    assert f"mv {lock} {tmp_path / renamed}" in err
    assert "not a lock dlsetup reads" not in err and "uv could not" not in err
    assert not (tmp_path / "env").exists()
    with pytest.raises(InputError, match=f"rename it to {re.escape(renamed)}") as caught:
        read_locked_environment(lock, PLATFORM)  # the conda reader says the same
    assert "not a lock dlsetup reads" not in str(caught.value)
    good = tmp_path / "ok" / renamed
    good.parent.mkdir()
    good.write_bytes(exported.read_bytes())
    code, _out, err = create(good, tmp_path / "env")
    assert code == 0, err
    assert "Plan: 2 PyPI packages for linux-64" in err
