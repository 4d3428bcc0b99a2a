"""The table "What each source in a lock gets" in docs/environments.md is what the code does
(issue 21): for every cell that is not "—", a lock of that format holding that kind of source is
written (conda-lock's writer, pixi's v6 layout, conda-lock's explicit renderer, a PEP 751 file) and
read through the same checks ``create --from-lock`` runs before anything is fetched, with and
without ``--allow-build``; the verdict must be the cell's words. The ``dlsetup lock`` column is
the conda-lock v1 reader's verdict (the same file format and reader), for the sources dlsetup
writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from dlsetup.envs.lockfiles.formats import PypiPackage
from dlsetup.errors import IntegrityError
from tests.envs.lock_builders import (
    LINUX_ONLY,
    PLATFORM,
    Fixture,
    write_conda_lock,
    write_explicit,
    write_pixi_lock_v6,
)
from tests.support.proc import REPO

pytestmark = LINUX_ONLY

WHEEL = "installed (sha256)"
SDIST = "refused, every one named; built with `--allow-build NAME`"
VCS = "refused: a VCS source, with what to do"
MD5 = "installed, verified by md5 (said once: the weaker hash)"
NO_HASH = "refused: no hash"
NO_SHA256 = "refused: no sha256"
REPODATA = "hashes from the channel's repodata.json"
DIRECTORY = "refused: a local directory, with what to do"
NONE = "—"
VERDICTS = {WHEEL, SDIST, VCS, MD5, NO_HASH, NO_SHA256, REPODATA, DIRECTORY, NONE}
COLUMNS = ("conda-lock", "dlsetup", "pixi", "explicit", "pylock")
COMMIT = "2b90b9f5ceec907a1c18123530e92e794ad901a4"


def documented() -> dict[tuple[str, str], str]:
    text = (REPO / "docs" / "environments.md").read_text(encoding="utf-8")
    table = text.split("<!-- source-table:start -->")[1].split("<!-- source-table:end -->")[0]
    cells: dict[tuple[str, str], str] = {}
    for line in table.strip().splitlines()[2:]:
        kind, *row = (c.strip() for c in line.strip().strip("|").split("|"))
        assert len(row) == len(COLUMNS), line
        cells.update({(kind, column): cell for column, cell in zip(COLUMNS, row, strict=True)})
    return cells


# --- verdicts, from the code --------------------------------------------------------------------


def _pypi_verdict(read: Callable[[tuple[str, ...]], Sequence[PypiPackage]], name: str) -> str:
    """The verdict for the PyPI package ``name`` of a lock: ``read(allow_build)`` reads the lock
    and runs create's checks (what it raises before anything is fetched is the verdict)."""
    try:
        read(())
    except IntegrityError as exc:
        message = " ".join(exc.message.split())
        if "VCS source" in message or "(it has vcs)" in message:
            return VCS
        if "local directory" in message or "(it has directory)" in message:
            return DIRECTORY
        if "no sha256" in message:
            return NO_SHA256
        assert "source distribution" in message or "(it has sdist)" in message, message
        read((name,))  # named with --allow-build: accepted, to be built
        return SDIST
    return WHEEL


def _conda_verdict(path: Path) -> str:
    """The verdict for the conda packages of ``path``: create's checks before any download."""
    from dlsetup.envs.conda.install import md5_only_note, read_lock_contents, verify_lock
    from dlsetup.envs.conda.repodata_hashes import unhashed

    contents = read_lock_contents(path, PLATFORM)
    try:
        verify_lock(contents)
    except IntegrityError as exc:
        assert "has no hash" in exc.message, exc.message
        return NO_HASH
    if contents.metadata_from_archive and unhashed(contents.records):
        return REPODATA
    return MD5 if md5_only_note(contents) else WHEEL


def _conda_reader(path: Path) -> Callable[[tuple[str, ...]], Sequence[PypiPackage]]:
    from dlsetup.envs.conda.install import read_lock_contents
    from dlsetup.envs.pypi.install import check_packages

    def read(allow_build: tuple[str, ...]) -> Sequence[PypiPackage]:
        contents = read_lock_contents(path, PLATFORM)
        check_packages(contents.pypi, PLATFORM, path, allow_build=allow_build)
        return contents.pypi

    return read


def _pylock_reader(path: Path) -> Callable[[tuple[str, ...]], Sequence[PypiPackage]]:
    from dlsetup.envs.pypi.install import check_sources
    from dlsetup.envs.venv.pylock import parse_pylock
    from dlsetup.envs.venv.read import locked_environment
    from tests.security.locks import HOST_PYTHON

    def read(allow_build: tuple[str, ...]) -> Sequence[PypiPackage]:
        lock = parse_pylock(path, named=True, allow_build=allow_build)
        locked = locked_environment(lock, PLATFORM, HOST_PYTHON, allow_build)
        check_sources(locked.pypi, PLATFORM, path, allow_build)
        return locked.pypi

    return read


# --- locks of each format holding each source -----------------------------------------------------


def _sources(fx: Fixture, tmp: Path) -> dict[str, tuple[str, str | None]]:
    """A URL and sha256 of each PyPI source kind (the sdist a real archive, the dir real)."""
    from tests.envs.test_allow_build import hostile_sdist, sha256

    sdist = hostile_sdist(tmp / "archives", "srcpkg", tmp / "never-written")
    (tmp / "proj").mkdir(exist_ok=True)
    return {
        "wheel": (fx.wheel_url("tinybeta"), fx.wheel_sha256("tinybeta")),
        "sdist": (sdist.resolve().as_uri(), sha256(sdist)),
        "VCS": (f"git+https://github.com/o/srcpkg.git@{COMMIT}", COMMIT),
        "local path": ((tmp / "proj").resolve().as_uri(), None),
    }


def _conda_lock_pypi(fx: Fixture, path: Path, url: str, digest: str | None) -> Path:
    from tests.envs.test_allow_build import conda_lock_with

    return conda_lock_with(fx, path, [("srcpkg", url, digest or "")])


def _pixi_pypi(fx: Fixture, path: Path, entry: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_pixi_lock_v6(fx, path, extra_pypi=({"name": "srcpkg", "version": "1.0", **entry},))


def _pylock(path: Path, package: dict[str, object]) -> Path:
    """A PEP 751 lock of one package: ``tinybeta 0.5`` where it has wheels (PEP 751 wants the
    file's name), else ``srcpkg 1.0``."""
    from tests.security.locks import HOST_PYTHON, write_pylock

    name, version = ("tinybeta", "0.5") if "wheels" in package else ("srcpkg", "1.0")
    return write_pylock(path, [{"name": name, "version": version, **package}], python=HOST_PYTHON)


def _without(path: Path, *keys: str) -> Path:
    """``path`` (a YAML lock) with every conda package's ``keys`` hashes removed."""
    data = yaml.safe_load(path.read_text())
    for entry in data.get("package", data.get("packages", [])):
        if entry.get("manager", "conda") == "conda" and "pypi" not in entry:
            for key in keys:
                (entry.get("hash") or entry).pop(key, None)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_source_table_lists_every_kind_and_format_once() -> None:
    cells = documented()
    kinds = {kind for kind, _ in cells}
    assert kinds == {"wheel", "sdist", "VCS", "md5-only", "unhashed explicit", "editable",
                     "local path"}  # fmt: skip
    assert set(cells.values()) <= VERDICTS, set(cells.values()) - VERDICTS


def test_every_cell_of_the_source_table_is_what_the_code_does(fx: Fixture, tmp_path: Path) -> None:
    cells = documented()
    sources = _sources(fx, tmp_path)
    seen: dict[tuple[str, str], str] = {}
    for kind, (url, digest) in sources.items():
        d = tmp_path / re.sub(r"\W", "-", kind)
        d.mkdir()
        seen[kind, "conda-lock"] = _pypi_verdict(
            _conda_reader(_conda_lock_pypi(fx, d / "x.lock.yml", url, digest)), "srcpkg"
        )
        pixi_entry: dict[str, object] = {"pypi": url, **({"sha256": digest} if digest and
                                          kind != "VCS" else {})}  # fmt: skip
        seen[kind, "pixi"] = _pypi_verdict(
            _conda_reader(_pixi_pypi(fx, d / "pixi" / "pixi.lock", pixi_entry)), "srcpkg"
        )
        explicit = write_explicit(write_conda_lock(fx, d / "base.lock.yml", pip=False), d / "e.txt")
        fragment = f"#sha256={digest}" if digest and kind != "VCS" else ""
        explicit.write_text(explicit.read_text() + f"# pip srcpkg @ {url}{fragment}\n")
        seen[kind, "explicit"] = _pypi_verdict(_conda_reader(explicit), "srcpkg")
        table: dict[str, object] = {
            "url": url,
            **({"hashes": {"sha256": digest}} if digest else {}),
        }
        package = {
            "wheel": {"wheels": [table]},
            "sdist": {"sdist": table},
            "VCS": {"vcs": {"type": "git", "url": url.removeprefix("git+").split("@")[0],
                            "commit-id": COMMIT}},
            "local path": {"directory": {"path": str(tmp_path / "proj")}},
        }[kind]  # fmt: skip
        seen[kind, "pylock"] = _pypi_verdict(_pylock_reader(_pylock(d / "pylock.toml", package)),
                                             "srcpkg")  # fmt: skip
    # editable: pixi's ``pypi: ./`` with ``editable: true``; PEP 751's directory, editable
    d = tmp_path / "editable"
    d.mkdir()
    seen["editable", "pixi"] = _pypi_verdict(
        _conda_reader(_pixi_pypi(fx, d / "pixi.lock", {"pypi": "./", "editable": True,
                                                        "sha256": "ab" * 32})), "srcpkg")  # fmt: skip
    seen["editable", "pylock"] = _pypi_verdict(_pylock_reader(_pylock(
        d / "pylock.toml", {"directory": {"path": str(d), "editable": True}})), "srcpkg")  # fmt: skip
    # md5-only and unhashed conda packages (PEP 751: a wheel with an md5 only, or no hash)
    d = tmp_path / "conda"
    d.mkdir()
    md5_lock = write_conda_lock(fx, d / "md5.lock.yml", pip=False, sha256=False)
    seen["md5-only", "conda-lock"] = _conda_verdict(md5_lock)
    seen["md5-only", "pixi"] = _conda_verdict(write_pixi_lock_v6(fx, d / "pixi.lock", sha256=False))
    seen["md5-only", "explicit"] = _conda_verdict(write_explicit(md5_lock, d / "md5.txt"))
    bare = d / "bare.txt"
    bare.write_text(re.sub(r"#[0-9a-f]{32}$", "", (d / "md5.txt").read_text(), flags=re.M))
    seen["unhashed explicit", "explicit"] = _conda_verdict(bare)
    (d / "p2").mkdir()
    seen["unhashed explicit", "pixi"] = _conda_verdict(
        _without(write_pixi_lock_v6(fx, d / "p2" / "pixi.lock", sha256=False), "md5")
    )
    wheel_url, _ = sources["wheel"]
    (d / "md5-wheel").mkdir()
    seen["md5-only", "pylock"] = _pypi_verdict(_pylock_reader(_pylock(
        d / "md5-wheel" / "pylock.toml",
        {"wheels": [{"url": wheel_url, "hashes": {"md5": "0" * 32}}]})), "srcpkg")  # fmt: skip
    # dlsetup lock writes conda-lock v1, read by the same reader
    for kind in ("wheel", "md5-only"):
        seen[kind, "dlsetup"] = seen[kind, "conda-lock"]
    expected = {key: cell for key, cell in cells.items() if cell != NONE}
    assert seen == expected
