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
    Fixture,
    build_fixture,
    write_conda_lock,
    write_pixi_lock_v6,
)
from tests.envs.lock_builders import create_from_lock as create

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="the fixture's python is this Linux interpreter's binary"
)

MD5_NOTE = re.compile(
    r"(\d+) packages of (\S+) \(([^)]*)\) have an md5 and no sha256: each is verified by its "
    r"md5, the weaker hash \(as conda, conda-lock and pixi verify it\)"
)


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build_fixture(tmp_path_factory.mktemp("lock-sources"))


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
