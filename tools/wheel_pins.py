"""The exact CUDA library wheel pins of each framework release, read from the release's own wheel.

``python -m tools.refresh_compat --wheel-pins`` (this module does the work) writes
``dlsetup/compat/data/cuda_wheel_pins.yaml``: for each torch and TensorFlow release listed in
:data:`RELEASES`, the ``==`` pins of ``nvidia-cudnn-cu*`` and ``nvidia-cublas-cu*`` in the
``Requires-Dist`` of its manylinux x86-64 wheel (torch pins them for Linux x86-64; TensorFlow in
its ``and-cuda`` extra), with the wheel and how its METADATA was read.

The METADATA comes from PyPI without downloading the wheel:

* the PEP 658 file (``<wheel URL>.metadata``) where PyPI serves one;
* otherwise — TensorFlow 2.16-2.18's wheels have none — a ranged read of the wheel: its last
  64 KiB hold the zip's end-of-central-directory record and, for a wheel, the central directory
  itself; the ``*.dist-info/METADATA`` entry there gives the offset and size of the member, and
  one more ranged read of that span gives its bytes (deflated, as wheels store it).

Fetching is passed in (``fetch(url)``, ``fetch_range(url, start, end)``), so the tests read a wheel
they build themselves, served by ranges from memory like an HTTP server would.
"""

from __future__ import annotations

import datetime
import json
import re
import struct
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement

Fetch = Callable[[str], bytes]
#: ``fetch_range(url, start, end)``: bytes ``start..end`` inclusive; a negative ``start`` and
#: ``end`` None ask for the last ``-start`` bytes.
FetchRange = Callable[[str, int, "int | None"], bytes]

PYPI_URL = "https://pypi.org/pypi/{name}/json"
DATA = (
    Path(__file__).resolve().parent.parent / "dlsetup" / "compat" / "data" / "cuda_wheel_pins.yaml"
)

#: The releases read: each torch release that pins cuDNN/cuBLAS wheels on Linux x86-64, and each
#: TensorFlow release with an ``and-cuda`` extra (2.14 on).
RELEASES: dict[str, tuple[str, ...]] = {
    "torch": (
        *("2.1.0", "2.1.1", "2.1.2", "2.2.0", "2.2.1", "2.2.2", "2.3.0", "2.3.1", "2.4.0"),
        *("2.4.1", "2.5.0", "2.5.1", "2.6.0", "2.7.0", "2.7.1", "2.8.0", "2.9.0", "2.9.1"),
        *("2.10.0", "2.11.0", "2.12.0", "2.12.1", "2.13.0", "2.14.0", "2.14.1", "2.15.0"),
    ),
    "tensorflow": (
        *("2.14.0", "2.14.1", "2.15.0", "2.15.1", "2.16.1", "2.16.2", "2.17.0", "2.17.1"),
        *("2.18.0", "2.18.1", "2.19.0", "2.19.1", "2.20.0", "2.21.0"),
    ),
}

#: The marker environment the pins are read for (a Linux x86-64 machine, the extra installed).
LINUX_X86_64 = {
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "sys_platform": "linux",
    "os_name": "posix",
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "platform_python_implementation": "CPython",
    "implementation_name": "cpython",
    "extra": "and-cuda",
}

_PINNED = re.compile(r"^nvidia-(cudnn|cublas)-cu\d+$")
_EOCD = b"PK\x05\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
TAIL = 65536


class PinReadError(Exception):
    """A wheel's METADATA could not be read (the message says where and why)."""


@dataclass(frozen=True)
class ReleasePins:
    """One release's pins, and where they were read.

    Attributes:
        framework: ``torch`` or ``tensorflow``.
        version: ``"2.18.1"``.
        pins: ``{"nvidia-cudnn-cu12": "9.3.0.75", ...}``.
        wheel: the wheel file read.
        read_via: ``pep658`` (PyPI's ``.metadata`` file) or ``range`` (the wheel's central
            directory and METADATA member, by ranged reads).
    """

    framework: str
    version: str
    pins: dict[str, str]
    wheel: str
    read_via: str


def fetch_url(url: str, timeout: float = 60.0) -> bytes:
    """GET ``url`` over https."""
    return fetch_bytes(url, None, timeout)


def fetch_url_range(url: str, start: int, end: int | None, timeout: float = 60.0) -> bytes:
    """GET bytes ``start..end`` of ``url`` (``start`` negative, ``end`` None: the last bytes)."""
    spec = f"bytes={start}" if end is None else f"bytes={start}-{end}"
    return fetch_bytes(url, spec, timeout)


def fetch_bytes(url: str, byte_range: str | None, timeout: float) -> bytes:
    if not url.startswith("https://"):
        raise PinReadError(f"not an https URL: {url}")
    headers = {"User-Agent": "dlsetup-refresh-compat/1"}
    if byte_range:
        headers["Range"] = byte_range
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - https only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        raise PinReadError(f"{url}: {type(exc).__name__}: {exc}") from exc


def pick_wheel(project_json: bytes, version: str, base: str) -> tuple[str, str]:
    """``(file name, URL)`` of ``version``'s manylinux x86-64 wheel (cp311 preferred), from the
    project's JSON (a mirror may write the file URLs relative to ``base``, the JSON's URL)."""
    files = json.loads(project_json).get("releases", {}).get(version, [])
    wheels = [
        (f["filename"], urllib.parse.urljoin(base, f["url"]))
        for f in files
        if f.get("filename", "").endswith(".whl")
        and "manylinux" in f["filename"]
        and "x86_64" in f["filename"]
    ]
    if not wheels:
        raise PinReadError(f"no manylinux x86_64 wheel among the files of {version}")
    wheels.sort(key=lambda w: ("-cp311-" not in w[0], w[0]))
    return wheels[0]


def _central_directory(tail: bytes, fetch_range: FetchRange, url: str) -> bytes:
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise PinReadError(f"{url}: no zip end-of-central-directory record in the last bytes")
    size, offset = struct.unpack("<II", tail[at + 12 : at + 20])
    if offset == 0xFFFFFFFF or size == 0xFFFFFFFF:
        raise PinReadError(f"{url}: a zip64 wheel (not read by ranges)")
    # Where the central directory sits in the tail: it ends where the EOCD record starts.
    if size <= at:
        return tail[at - size : at]
    return fetch_range(url, offset, offset + size - 1)


def _metadata_entry(directory: bytes, url: str) -> tuple[int, int, int, int]:
    """(local header offset, compressed size, method, uncompressed size) of the METADATA."""
    pos = 0
    while directory.startswith(_CENTRAL, pos):
        method, _, _, _, csize, usize, nlen, xlen, clen = struct.unpack(
            "<HHHIIIHHH", directory[pos + 10 : pos + 34]
        )
        offset = struct.unpack("<I", directory[pos + 42 : pos + 46])[0]
        name = directory[pos + 46 : pos + 46 + nlen].decode("utf-8", "replace")
        if re.fullmatch(r"[^/]+\.dist-info/METADATA", name):
            return offset, csize, method, usize
        pos += 46 + nlen + xlen + clen
    raise PinReadError(f"{url}: no *.dist-info/METADATA in the wheel's central directory")


def metadata_by_range(url: str, fetch_range: FetchRange) -> str:
    """The wheel's ``*.dist-info/METADATA``, read by ranged requests (never the whole wheel)."""
    tail = fetch_range(url, -TAIL, None)
    directory = _central_directory(tail, fetch_range, url)
    offset, csize, method, usize = _metadata_entry(directory, url)
    member = fetch_range(url, offset, offset + 30 + 1024 + csize - 1)
    if not member.startswith(_LOCAL):
        raise PinReadError(f"{url}: no local file header at offset {offset}")
    nlen, xlen = struct.unpack("<HH", member[26:30])
    data = member[30 + nlen + xlen : 30 + nlen + xlen + csize]
    if method == 8:
        data = zlib.decompressobj(-15).decompress(data)
    elif method != 0:
        raise PinReadError(f"{url}: METADATA stored with zip method {method}")
    if len(data) != usize:
        raise PinReadError(f"{url}: METADATA is {len(data)} bytes, the directory says {usize}")
    return data.decode("utf-8")


def parse_wheel_pins(metadata: str) -> dict[str, str]:
    """The ``==`` pins of cuDNN/cuBLAS wheels in ``metadata`` that apply on Linux x86-64 with the
    ``and-cuda`` extra (``Requires-Dist: nvidia-cudnn-cu12==9.3.0.75; extra == "and-cuda"``)."""
    pins: dict[str, str] = {}
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        try:
            req = Requirement(line.partition(":")[2].strip())
        except InvalidRequirement:
            continue
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if not _PINNED.match(name):
            continue
        if req.marker is not None and not Marker(str(req.marker)).evaluate(LINUX_X86_64):
            continue
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact:
            pins[name] = exact[0]
    return pins


def read_release(
    framework: str, version: str, project: bytes, fetch: Fetch, fetch_range: FetchRange
) -> ReleasePins:
    """One release's pins: its wheel from the project's JSON, then PEP 658 or ranged reads."""
    wheel, url = pick_wheel(project, version, PYPI_URL.format(name=framework))
    try:
        text = fetch(url + ".metadata").decode("utf-8")
        via = "pep658"
    except PinReadError:  # no .metadata file (TensorFlow 2.16-2.18): read the wheel's dist-info
        text = metadata_by_range(url, fetch_range)
        via = "range"
    return ReleasePins(framework, version, parse_wheel_pins(text), wheel, via)


def render_yaml(found: list[ReleasePins], today: str) -> str:
    """The data file: pins per framework and version, each with its wheel and how it was read."""
    lines = [
        "# Exact pins of the CUDA library wheels (cuDNN, cuBLAS) in each framework release's",
        "# Requires-Dist, read from its manylinux x86_64 wheel on PyPI by",
        "# `python -m tools.refresh_compat --wheel-pins` (tools/wheel_pins.py). torch pins them for",
        "# Linux x86_64; TensorFlow in its and-cuda extra. doctor's cuda_wheels.pin_conflict uses",
        "# these when an installed framework's own METADATA lists none.",
        f'refreshed: "{today}"',
        "sources:",
        "  pypi_wheel_metadata: \"PyPI JSON API https://pypi.org/pypi/<name>/json, the release's",
        "    manylinux x86_64 wheel (cp311 first); its METADATA from PEP 658's <wheel>.metadata, or",
        "    by ranged reads of the wheel's central directory and dist-info/METADATA member where",
        f'    PyPI serves no .metadata file (read_via: range); read {today}"',
        "pins:",
    ]
    for framework in RELEASES:
        lines.append(f"  {framework}:")
        for r in (x for x in found if x.framework == framework):
            pins = ", ".join(f"{k}: {json.dumps(v)}" for k, v in sorted(r.pins.items()))
            lines.append(
                f'    "{r.version}": {{{pins}{", " if pins else ""}wheel: {json.dumps(r.wheel)}, '
                f"read_via: {r.read_via}, source: pypi_wheel_metadata}}"
            )
    return "\n".join(lines) + "\n"


def refresh_pins(
    fetch: Fetch = fetch_url, fetch_range: FetchRange = fetch_url_range, today: str | None = None
) -> tuple[str, list[str]]:
    """Read every release of :data:`RELEASES`; return (the data file's text, problems)."""
    day = today or datetime.datetime.now(datetime.UTC).date().isoformat()
    found: list[ReleasePins] = []
    problems: list[str] = []
    for framework, versions in RELEASES.items():
        try:
            project = fetch(PYPI_URL.format(name=framework))
        except PinReadError as exc:
            problems.append(f"{framework}: {exc}")
            continue
        for version in versions:
            try:
                found.append(read_release(framework, version, project, fetch, fetch_range))
            except (PinReadError, ValueError, KeyError, zlib.error) as exc:
                problems.append(f"{framework} {version}: {exc}")
    return render_yaml(found, day), problems
