"""VCS sources and source distributions in a lock's PyPI part, and ``--allow-build NAME``
(issue 21, item 4).

Without ``--allow-build`` nothing is built: a lock with source distributions is refused naming
every one at once, and a hostile sdist's ``setup.py`` (an in-tree PEP 517 backend that writes a
marker file as soon as it is imported) never runs. With ``--allow-build NAME`` exactly the named
sdists are built by uv, after their sha256 is verified (a tampered one is refused before its
``setup.py`` runs), in uv's isolated build environment, every other package from its wheel. VCS
sources (conda-lock records the 40-character commit in ``sha256:``; pixi records no hash) and
local directories (pixi's editable ``pypi: ./``) are named as what they are, with what to do.

The locks are written by conda-lock's own writer and in pixi's v6 layout
(:mod:`tests.envs.lock_builders`); the sdists are real ``.tar.gz`` archives uv builds offline.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
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

#: the commit a VCS entry names (conda-lock writes it as the entry's ``sha256``)
COMMIT = "2b90b9f5ceec907a1c18123530e92e794ad901a4"

_BACKEND = """\
import os
import sys

with open({marker!r}, "a") as fh:  # runs as soon as a build frontend imports the backend
    fh.write("{name}\\n")
with open({marker!r} + ".prefix", "a") as fh:  # the environment the build runs in
    fh.write(sys.prefix + "\\n")


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    # the wheel ships in the sdist: the fixture's Python has no zipfile in a build environment
    with open("{wheel}", "rb") as src, open(os.path.join(wheel_directory, "{wheel}"), "wb") as dst:
        dst.write(src.read())
    return "{wheel}"
"""


def hostile_sdist(directory: Path, name: str, marker: Path) -> Path:
    """``NAME-1.0.tar.gz`` whose in-tree build backend, ``setup.py``, appends ``NAME`` to
    ``marker`` when imported, then returns a real wheel of ``NAME`` (no build requirement: uv
    builds it offline)."""
    from tests.support.wheels import Wheel, build_wheel

    wheel = build_wheel(directory / "built", Wheel(name, "1.0", files={
        f"{name}/built.py": b"BUILT = True\n"}))  # fmt: skip
    members = {
        "setup.py": _BACKEND.format(marker=str(marker), name=name, wheel=wheel.name).encode(),
        "pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "setup"\n'
            f'backend-path = ["."]\n[project]\nname = "{name}"\nversion = "1.0"\n'
        ).encode(),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        wheel.name: wheel.read_bytes(),
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(f"{name}-1.0/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def create_building(lock: Path, prefix: Path, *extra: str, **env: str) -> tuple[int, str, str]:
    """``create --from-lock`` where uv builds: the fixture's python finds the standard library
    through a ``.pth`` file of its own site-packages (:func:`tests.envs.lock_builders.python_files`),
    which an isolated build environment does not read (a conda-forge python has it in
    ``lib/pythonX.Y``), so the real one is put on ``PYTHONPATH`` for uv's build hooks."""
    import sysconfig

    from tests.support.proc import REPO, run_cli

    stdlib = sysconfig.get_paths()["stdlib"]
    path = f"{REPO}:{stdlib}:{stdlib}/lib-dynload"
    proc = run_cli(
        "create", "--from-lock", str(lock), "--prefix", str(prefix), "--no-smoke",
        "--no-jupyter", *extra, env={"PYTHONPATH": path, **env},
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def conda_lock_with(fx: Fixture, path: Path, extra: list[tuple[str, str, str]]) -> Path:
    """A conda-lock v1 file (conda-lock's writer) with the fixture's packages and the PyPI
    entries ``extra`` (name, URL, the ``sha256:`` value conda-lock records)."""
    from conda_lock.lockfile import parse_conda_lock_file, write_conda_lock_file
    from conda_lock.lockfile.v1.models import HashModel
    from conda_lock.lockfile.v2prelim.models import LockedDependency

    write_conda_lock(fx, path, pip=False)
    lockfile = parse_conda_lock_file(path)
    lockfile.package += [
        LockedDependency(
            name=name, version="1.0", manager="pip", platform=PLATFORM, dependencies={},
            url=url, hash=HashModel(sha256=digest), categories={"main"},
        )
        for name, url, digest in extra
    ]  # fmt: skip
    path.unlink()
    write_conda_lock_file(lockfile, path, metadata_choices=set())
    return path


def evil_lock(fx: Fixture, tmp_path: Path, names: tuple[str, ...]) -> tuple[Path, Path]:
    """A conda-lock file with hostile sdists ``names``, and their marker file (not yet there)."""
    marker = tmp_path / "setup-py-ran"
    sdists = [hostile_sdist(tmp_path / "sdists", name, marker) for name in names]
    extra = [(name, s.resolve().as_uri(), sha256(s)) for name, s in zip(names, sdists, strict=True)]
    extra.append(("tinybeta", fx.wheel_url("tinybeta"), fx.wheel_sha256("tinybeta")))
    return conda_lock_with(fx, tmp_path / "evil.conda-lock.yml", extra), marker


def site_has(prefix: Path, module: str) -> bool:
    found = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", f"import {module}.built as b; print(b.BUILT)"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=False,
    )  # fmt: skip
    return found.stdout.strip() == "True"


def test_without_allow_build_every_sdist_is_named_at_once_and_none_runs(
    fx: Fixture, tmp_path: Path
) -> None:
    lock, marker = evil_lock(fx, tmp_path, ("evila", "evilb", "evilc"))
    code, _out, err = create(lock, tmp_path / "env")
    assert code == 4, err
    assert (
        f"3 PyPI packages in {lock} are source distributions: evila 1.0 (evila-1.0.tar.gz), "
        "evilb 1.0 (evilb-1.0.tar.gz), evilc 1.0 (evilc-1.0.tar.gz); dlsetup builds one only "
        "when it is named with --allow-build" in " ".join(err.split())
    )
    assert "--allow-build evila --allow-build evilb --allow-build evilc" in " ".join(err.split())
    assert "arbitrary code" in err
    assert not marker.exists(), marker.read_text()
    assert not (tmp_path / "env").exists()
    # naming some of them is not enough: the others are named, and still nothing runs
    code, _out, err = create(lock, tmp_path / "env", "--allow-build", "evila")
    assert code == 4, err
    assert f"2 PyPI packages in {lock} are source distributions: evilb 1.0" in " ".join(err.split())
    assert "evila 1.0" not in err
    assert not marker.exists()


def test_allow_build_builds_exactly_the_named_sdists_after_their_hash(
    fx: Fixture, tmp_path: Path
) -> None:
    lock, marker = evil_lock(fx, tmp_path, ("evila", "evilb"))
    code, _out, err = create_building(
        lock, tmp_path / "env", "--allow-build", "evila", "--allow-build", "EvilB",
        UV_NO_BUILD_ISOLATION="1",
    )  # fmt: skip
    assert code == 0, err
    # in uv's isolated build environments, never in the environment being built, whatever the
    # user's UV_NO_BUILD_ISOLATION says
    prefixes = set(Path(str(marker) + ".prefix").read_text().split())
    assert prefixes and not any(".dlsetup-partial-env-" in p for p in prefixes), prefixes
    # uv imports the backend once per hook (requirements, then the build): only these two ran
    assert set(marker.read_text().split()) == {"evila", "evilb"}
    assert "Building evila, evilb from source (--allow-build" in err
    assert site_has(tmp_path / "env", "evila") and site_has(tmp_path / "env", "evilb")


def test_allow_build_of_one_builds_only_it(fx: Fixture, tmp_path: Path) -> None:
    lock, marker = evil_lock(fx, tmp_path, ("evila",))
    code, out, err = create_building(lock, tmp_path / "env", "--allow-build", "evila", "--json")
    assert code == 0, err
    assert set(marker.read_text().split()) == {"evila"}
    assert json.loads(out)["data"]["pypi_packages"] == 2  # tinybeta's wheel, unbuilt, + evila


def test_a_tampered_sdist_is_refused_before_its_setup_py_runs(fx: Fixture, tmp_path: Path) -> None:
    lock, marker = evil_lock(fx, tmp_path, ("evila",))
    sdist = tmp_path / "sdists" / "evila-1.0.tar.gz"
    hostile_sdist(tmp_path / "other", "evila", tmp_path / "other-marker")  # other bytes
    sdist.write_bytes((tmp_path / "other" / "evila-1.0.tar.gz").read_bytes())
    code, _out, err = create_building(lock, tmp_path / "env", "--allow-build", "evila")
    assert code == 4, err
    assert "hash mismatch for the PyPI package evila 1.0" in err
    assert not marker.exists() and not (tmp_path / "other-marker").exists()
    assert not (tmp_path / "env").exists()


def test_allow_build_of_a_name_the_lock_has_no_sdist_of_is_a_usage_error(
    fx: Fixture, tmp_path: Path
) -> None:
    lock, marker = evil_lock(fx, tmp_path, ("evila",))
    code, _out, err = create(lock, tmp_path / "env", "--allow-build", "tinyalpha")
    assert code == 2, err
    assert (
        f"--allow-build tinyalpha: {lock} has no PyPI source distribution of that name; its "
        "source distributions: evila" in " ".join(err.split())
    )
    assert not marker.exists()


def test_uv_is_told_to_build_only_the_allowed_ones() -> None:
    from dlsetup.envs.lockfiles.formats import PypiPackage
    from dlsetup.envs.pypi.install import build_options

    packages = [
        PypiPackage("Evil_A", "1.0", "file:///s/evil_a-1.0.tar.gz", "0" * 64),
        PypiPackage("ok", "1.0", "file:///w/ok-1.0-py3-none-any.whl", "0" * 64),
    ]
    assert build_options(packages, ()) == ["--no-build"]
    assert build_options(packages, ("evil-a",)) == [
        "--only-binary", ":all:", "--no-binary", "Evil_A",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("url", "source"),
    [
        ("https://files.example/a-1.0-py3-none-any.whl", "wheel"),
        ("https://files.example/a-1.0.tar.gz", "sdist"),
        ("file:///srv/a-1.0.zip", "sdist"),
        ("https://files.example/download?id=3", "sdist"),  # not a wheel: it would be built
        (f"git+https://github.com/o/a.git@{COMMIT}", "vcs"),
        ("hg+https://hg.example/a#rev", "vcs"),
        ("file:///home/me/project", "path"),
    ],
)
def test_each_pypi_source_is_told_apart_by_its_url(url: str, source: str) -> None:
    from dlsetup.envs.lockfiles.formats import PypiPackage

    assert PypiPackage("a", "1.0", url, None).source == source


# --- VCS and path sources -----------------------------------------------------------------------


def test_a_conda_lock_vcs_entry_is_named_as_one_with_what_to_do(
    fx: Fixture, tmp_path: Path
) -> None:
    """conda-lock writes a pip git dependency with its URL at the commit and the 40-character
    commit as ``sha256:``: not "has no sha256 ... regenerate", which no regeneration fixes."""
    url = f"git+https://github.com/facebookresearch/sam2.git@{COMMIT}"
    # rattler refuses this genuine conda-lock shape (its sha256 is no digest): not named
    # *.conda-lock.yml, so the suite's check that both parsers read every lock leaves it alone
    lock = conda_lock_with(fx, tmp_path / "vcs.lock.yml", [("sam-2", url, COMMIT)])
    entry = next(p for p in yaml.safe_load(lock.read_text())["package"] if p["name"] == "sam-2")
    assert entry["hash"] == {"sha256": COMMIT}
    code, _out, err = create(lock, tmp_path / "env", "--allow-build", "sam-2")
    assert code == 4, err  # --allow-build builds verified source distributions only
    flat = " ".join(err.split())
    assert "--allow-build builds only source distributions verified by their sha256" in flat
    code, _out, err = create(lock, tmp_path / "env")
    assert code == 4, err
    flat = " ".join(err.split())
    assert f"has PyPI packages from a VCS source: sam-2 1.0 ({url})" in flat
    assert "records a revision, not the hash of a file" in flat
    assert "build a wheel of that revision" in flat and "uv pip install --python" in flat
    assert "has no sha256" not in flat and "regenerate" not in flat
    assert not (tmp_path / "env").exists()


def test_pixi_v6_git_and_editable_sources_are_named_as_what_they_are(
    fx: Fixture, tmp_path: Path
) -> None:
    """pixi's v6 layout: a git source with no hash; an editable path source (``pypi: ./``)."""
    git = f"git+https://github.com/facebookresearch/sam2.git?rev=main#{COMMIT}"
    project = tmp_path / "proj"
    project.mkdir()
    lock = write_pixi_lock_v6(
        fx, project / "pixi.lock",
        extra_pypi=({"pypi": git, "name": "sam-2", "version": "1.0",
                     "requires_python": ">=3.10.0"},),
    )  # fmt: skip
    code, _out, err = create(lock, tmp_path / "env")
    assert code == 4, err
    assert f"has PyPI packages from a VCS source: sam-2 1.0 ({git})" in " ".join(err.split())
    editable = write_pixi_lock_v6(
        fx, project / "pixi.lock",
        extra_pypi=({"pypi": "./", "name": "proj", "version": "0.1.0", "sha256": "ab" * 32,
                     "editable": True},),
    )  # fmt: skip
    code, _out, err = create(editable, tmp_path / "env")
    assert code == 4, err
    flat = " ".join(err.split())
    assert re.search(
        rf"has PyPI packages from a local directory \(an editable or path source, installed by "
        rf"building it\): proj \S+ \({re.escape(project.as_uri())}/?\)",
        flat,
    ), flat
    assert not (tmp_path / "env").exists()


# --- a PEP 751 lock (the venv backend) -----------------------------------------------------------


def sdist_only(directory: Path, name: str, marker: Path) -> dict[str, object]:
    """A ``[[packages]]`` table with only the sdist of :func:`hostile_sdist` (as uv writes a
    package PyPI has no wheel of)."""
    sdist = hostile_sdist(directory, name, marker)
    return {"name": name, "version": "1.0",
            "sdist": {"name": sdist.name, "url": sdist.resolve().as_uri(),
                      "hashes": {"sha256": sha256(sdist)}}}  # fmt: skip


def test_a_pylock_names_every_sdist_and_builds_only_the_allowed_ones(tmp_path: Path) -> None:
    from tests.security.locks import HOST_PYTHON, wheel_package, write_pylock
    from tests.support.proc import REPO, run_cli

    marker = tmp_path / "setup-py-ran"
    packages = [wheel_package(tmp_path / "w"),
                *(sdist_only(tmp_path / "s", name, marker) for name in ("evila", "evilb"))]  # fmt: skip
    lock = write_pylock(tmp_path / "pylock.toml", packages, python=HOST_PYTHON)

    def venv(prefix: Path, *extra: str, **env: str) -> tuple[int, str]:
        proc = run_cli("create", "--from-lock", str(lock), "--prefix", str(prefix), "--no-smoke",
                       "--no-jupyter", *extra, env={"PYTHONPATH": str(REPO), **env})  # fmt: skip
        return proc.returncode, " ".join(proc.stderr.split())

    code, err = venv(tmp_path / "env")
    assert code == 4, err
    assert "2 packages have no wheel: evila 1.0 (sdist), evilb 1.0 (sdist)" in err
    assert "--allow-build evila --allow-build evilb" in err
    code, err = venv(tmp_path / "env", "--allow-build", "evila")
    assert code == 4, err
    assert "package evilb 1.0 has no wheel (it has sdist)" in err
    assert not marker.exists() and not (tmp_path / "env").exists()
    code, err = venv(tmp_path / "env", "--allow-build", "evila", "--allow-build", "evilb",
                     UV_NO_BUILD_ISOLATION="1")  # fmt: skip
    assert code == 0, err
    assert set(marker.read_text().split()) == {"evila", "evilb"}
    # built in uv's isolated build environments, never in the venv being built: a user's
    # UV_NO_BUILD_ISOLATION does not reach the uv that builds what --allow-build names
    prefixes = set(Path(str(marker) + ".prefix").read_text().split())
    assert prefixes and not any(".dlsetup-partial-env-" in p for p in prefixes), prefixes
    assert site_has(tmp_path / "env", "evila") and site_has(tmp_path / "env", "evilb")
