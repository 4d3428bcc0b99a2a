"""Small PEP 751 locks written by hand over tiny wheels built at test time, and an sdist whose
build backend (its ``setup.py``) would write a marker file if anything ever ran it."""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
from pathlib import Path

from tests.support.wheels import Wheel, build_wheel

HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _toml(value: object) -> str:
    import json

    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def write_pylock(
    path: Path, packages: list[dict[str, object]], *, python: str | None = None
) -> Path:
    """A PEP 751 lock of ``packages`` (each a ``[[packages]]`` table), with ``[tool.dlsetup]
    python = PYTHON`` when given."""
    lines = ['lock-version = "1.0"', 'created-by = "hand"', 'requires-python = ">=3.9"']
    for package in packages:
        lines += ["", "[[packages]]", *(f"{k} = {_toml(v)}" for k, v in package.items())]
    if python is not None:
        lines += ["", "[tool.dlsetup]", f"python = {_toml(python)}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def wheel_package(directory: Path, name: str = "tinyok", version: str = "1.0") -> dict[str, object]:
    """A ``[[packages]]`` table of a pure-Python wheel built into ``directory``."""
    wheel = build_wheel(directory, Wheel(name, version))
    return {
        "name": name,
        "version": version,
        "wheels": [
            {
                "name": wheel.name,
                "url": wheel.resolve().as_uri(),
                "hashes": {"sha256": sha256(wheel)},
            }
        ],
    }


def build_evil_sdist(directory: Path, name: str, marker: Path) -> Path:
    """``NAME-1.0.tar.gz``: its in-tree build backend is ``setup.py``, which writes ``marker`` as
    soon as a build frontend imports it (no build requirement to download: uv builds it offline)."""
    setup = (
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('setup.py ran')\n"
        "def get_requires_for_build_wheel(config_settings=None):\n    return []\n"
        "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
        "    raise SystemExit('no wheel from here')\n"
    )
    members = {
        "setup.py": setup,
        "pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "setup"\nbackend-path = ["."]\n'
        ),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-1.0/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def sdist_package(directory: Path, name: str, marker: Path) -> dict[str, object]:
    """A ``[[packages]]`` table with a wheel that runs nowhere (CPython 2.7 on 32-bit Windows)
    and the sdist of :func:`build_evil_sdist`: an installer that falls back to the sdist runs
    its ``setup.py``."""
    sdist = build_evil_sdist(directory, name, marker)
    nowhere = build_wheel(directory, Wheel(name, "1.0", tag="cp27-cp27m-win32"))
    return {
        "name": name,
        "version": "1.0",
        "sdist": {"name": sdist.name, "url": sdist.resolve().as_uri(),
                  "hashes": {"sha256": sha256(sdist)}},
        "wheels": [
            {"name": nowhere.name, "url": nowhere.resolve().as_uri(),
             "hashes": {"sha256": sha256(nowhere)}}
        ],
    }  # fmt: skip
