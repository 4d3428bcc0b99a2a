"""Tiny real wheels and a local PyPI index, built at test time (no network).

A wheel here is a real zip archive with ``NAME/__init__.py``, ``*.dist-info/METADATA`` (its
``Requires-Dist`` lines), ``WHEEL`` (its tags) and ``RECORD`` (sha256 of every file), so uv, pip and
``installer`` read and install it like any wheel from PyPI.

* :func:`build_wheel` writes one wheel; ``tag`` picks the platform tag (``py3-none-any`` by
  default; ``cp312-cp312-manylinux_2_17_x86_64`` for a platform-specific one).
* :func:`build_index` writes a PEP 503 "simple" index (``simple/index.html`` and
  ``simple/<project>/index.html`` with ``#sha256=`` links, and each wheel's ``METADATA`` beside
  it as PEP 658/714 ``.metadata`` files, as PyPI serves them) over a directory of wheels, which uv
  reads as ``--index-url file:///.../simple``; the wheels also form a flat ``--find-links``
  directory.

Owned by the issue-9 lock work (helper 9b); the read/install work imports it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: a fixed date for every archive member, so the same wheel always has the same hash
_DATE = (2026, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Wheel:
    """One wheel to build.

    Attributes:
        name: the project name as written (``tiny-dep``).
        version: ``1.0``.
        requires: ``Requires-Dist`` values (``"tiny-dep>=1"``, ``"x; sys_platform == 'win32'"``).
        tag: the wheel's compatibility tag ``python-abi-platform``.
        requires_python: ``Requires-Python`` (empty: none).
        files: extra files in the archive (path -> bytes).
    """

    name: str
    version: str
    requires: tuple[str, ...] = ()
    tag: str = "py3-none-any"
    requires_python: str = ""
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def distribution(self) -> str:
        """The file-name form of the name (``tiny_dep``)."""
        return re.sub(r"[-_.]+", "_", self.name).lower()

    @property
    def filename(self) -> str:
        """``tiny_dep-1.0-py3-none-any.whl``."""
        return f"{self.distribution}-{self.version}-{self.tag}.whl"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode('ascii')}"


def build_wheel(directory: Path, wheel: Wheel) -> Path:
    """Write ``wheel`` into ``directory`` and return its path (the same bytes every time)."""
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{wheel.distribution}-{wheel.version}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {wheel.name}",
        f"Version: {wheel.version}",
        "Summary: a tiny test wheel built by dlsetup's test suite",
    ]
    if wheel.requires_python:
        metadata.append(f"Requires-Python: {wheel.requires_python}")
    metadata += [f"Requires-Dist: {r}" for r in wheel.requires]
    pure = wheel.tag.endswith("-none-any")
    members: dict[str, bytes] = {
        f"{wheel.distribution}/__init__.py": f'__version__ = "{wheel.version}"\n'.encode(),
        **wheel.files,
        f"{dist_info}/METADATA": ("\n".join(metadata) + "\n").encode(),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: dlsetup-tests\n"
            f"Root-Is-Purelib: {'true' if pure else 'false'}\nTag: {wheel.tag}\n"
        ).encode(),
    }
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in members.items()]
    record.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in members.items():
            info = zipfile.ZipInfo(path, date_time=_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    out = directory / wheel.filename
    out.write_bytes(buffer.getvalue())
    return out


def _write_metadata(wheel: Path) -> str:
    """Write the wheel's ``METADATA`` beside it as ``NAME.whl.metadata`` (PEP 658/714, as PyPI
    serves it); return its sha256."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        data = archive.read(name)
    wheel.with_name(wheel.name + ".metadata").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def normalize(name: str) -> str:
    """PEP 503's normalized project name (``Tiny_Dep`` -> ``tiny-dep``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def build_index(root: Path, wheels: Iterable[Wheel], *, metadata: bool = True) -> str:
    """Build the wheels into ``root/files`` and a PEP 503 index over them in ``root/simple``
    (with ``metadata=False``, no PEP 658 ``.metadata`` files: an index that serves none).

    Returns:
        the index's ``file://`` URL (``.../simple``), for ``--index-url``.
    """
    files = root / "files"
    projects: dict[str, list[Path]] = {}
    for wheel in wheels:
        projects.setdefault(normalize(wheel.name), []).append(build_wheel(files, wheel))
    simple = root / "simple"
    simple.mkdir(parents=True, exist_ok=True)
    links = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects))
    (simple / "index.html").write_text(
        f"<!DOCTYPE html><html><body>\n{links}</body></html>\n", encoding="utf-8"
    )
    for project, paths in projects.items():
        page = simple / project
        page.mkdir(exist_ok=True)
        anchors = "".join(
            f'<a href="../../files/{html.escape(p.name)}#sha256='
            f'{hashlib.sha256(p.read_bytes()).hexdigest()}"'
            + (f' data-core-metadata="sha256={_write_metadata(p)}"' if metadata else "")
            + f">{html.escape(p.name)}</a>\n"
            for p in sorted(paths)
        )
        (page / "index.html").write_text(
            f"<!DOCTYPE html><html><body>\n{anchors}</body></html>\n", encoding="utf-8"
        )
    return simple.resolve().as_uri()
