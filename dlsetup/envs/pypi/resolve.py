"""The PyPI part of a lock: a ``pip:`` section resolved with uv for the solved Python and platform.

What pixi does, with the tool pixi uses: after rattler has solved the conda part of a platform,
``uv pip compile`` resolves the ``pip:`` requirements for that platform (``--python-platform``, the
``uv_platform`` column of :mod:`dlsetup.platforms`, the macOS floor as ``MACOSX_DEPLOYMENT_TARGET``)
and for the Python version the conda part solved (``--python-version 3.12.7``), wheels only
(``--only-binary :all:``: a lock for another platform cannot build an sdist), with hashes. Its
``pylock.toml`` output (PEP 751) gives each package's wheel URLs and sha256; the best wheel for the
platform is chosen by tag priority (:func:`platform_tags`), and its ``Requires-Dist`` (read from the
wheel's ``METADATA`` for ``file://`` indexes, from the index's PEP 658 ``.metadata`` file for remote
ones) gives the ``dependencies`` of conda-lock's ``manager: pip`` entry, as conda-lock's own
solver writes them (``{name: constraint}``, ``*`` for none).

**The conda part comes first.** Every conda package that depends on ``python`` (conda-lock's own
rule), named by its PyPI name (the ``pypi-to-conda.json`` map, else the conda name), is offered to
uv as an installed distribution at its conda version: a metadata-only stub wheel in a
``--find-links`` directory plus a ``name==version`` constraint. So a PyPI requirement that conda
already satisfies resolves to the conda package and is left out of the PyPI part (never installed
twice), and a PyPI package that needs another version of it is a conflict uv reports.

Failures are :class:`dlsetup.errors.SolveError` (exit 4) naming the platform and, where uv says so,
the package without a wheel for it; uv missing is :class:`MissingToolError` (exit 3). Index
credentials follow :mod:`dlsetup.envs.credentials`: ``${VAR}`` placeholders are filled in for uv
(through its environment, never its command line), wheel URLs under such an index are written with
the placeholders, literal credentials are stripped, and every message is redacted.
"""

from __future__ import annotations

import functools
import io
import json
import re
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from dlsetup import children
from dlsetup.envs.credentials import expand_auth, placeholders, redact, strip_auth
from dlsetup.envs.pypi.uv import uv_binary, uv_cache, uv_environment
from dlsetup.errors import MissingToolError, SolveError
from dlsetup.platforms import PLATFORM_INFO

#: seconds one ``uv pip compile`` may take
UV_TIMEOUT_S = 900
#: seconds to fetch one wheel's PEP 658 metadata
METADATA_TIMEOUT_S = 30
_NO_WHEEL_RE = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9._\-]*)(?:==\S+)? (?:has no wheels with a matching "
    r"(?:platform|Python ABI|Python implementation) tag|has no usable wheels|"
    r"(?:only has|is only available as) (?:a )?source distributions?)"
)


@dataclass(frozen=True)
class PypiPackage:
    """One PyPI package of a platform's PyPI part.

    Attributes:
        name: the normalized project name.
        version: the version resolved.
        url: the wheel's URL as it goes into the lock (placeholders kept, credentials stripped).
        sha256: the wheel's sha256 (hex).
        dependencies: ``{name: constraint}`` from its ``Requires-Dist`` for this platform.
    """

    name: str
    version: str
    url: str
    sha256: str
    dependencies: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PypiSolution:
    """The PyPI part of one platform.

    Attributes:
        platform: conda subdir.
        packages: resolved PyPI packages, sorted by name (conda-provided ones left out).
        provided_by_conda: requirements of the ``pip:`` section the conda part satisfies
            (``numpy 2.1.3``).
        resolve_ms: wall time of the resolution, milliseconds.
        notes: anything worth saying.
        without_metadata: the wheels (``tiny-app 1.0``) whose metadata could not be read (an
            index without PEP 658 ``.metadata`` files): the lock lists no dependencies for them;
            said once, in a summary (:attr:`dlsetup.envs.conda.lock.LockResult.pypi_notes`).
    """

    platform: str
    packages: tuple[PypiPackage, ...]
    provided_by_conda: tuple[str, ...]
    resolve_ms: float
    notes: tuple[str, ...] = ()
    without_metadata: tuple[str, ...] = ()


@dataclass(frozen=True)
class PypiRequest:
    """What to resolve for one platform.

    Attributes:
        platform: conda subdir.
        requirements: PEP 508 requirements (the ``pip:`` section's for this platform).
        python_version: the solved Python, ``3.12.7``.
        provided: ``{pypi name: version}`` of the conda part (:func:`conda_provided`).
        index_url: the primary index as written (``${VAR}`` allowed), None: PyPI.
        extra_index_urls: extra indexes as written.
    """

    platform: str
    requirements: tuple[str, ...]
    python_version: str
    provided: Mapping[str, str]
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()


def normalize(name: str) -> str:
    """PEP 503's normalized name (``Tiny_Dep`` -> ``tiny-dep``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _conda_to_pypi() -> dict[str, str]:
    path = resources.files("dlsetup").joinpath("data", "pypi-to-conda.json")
    mapping: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
    return {v["conda_name"]: v["pypi_name"] for v in mapping.values()}


def conda_provided(records: Iterable[tuple[str, str, Sequence[str]]]) -> dict[str, str]:
    """``{pypi name: version}`` of the conda packages that are Python distributions.

    Args:
        records: ``(conda name, version, depends)`` of a platform's solution.

    As conda-lock decides it: a package that depends on ``python`` is one, named by the
    PyPI-to-conda map or else its conda name (a collision prefers the package whose conda name is
    the PyPI name).
    """
    names = _conda_to_pypi()
    provided: dict[str, str] = {}
    for name, version, depends in records:
        if name.startswith("__") or not any(d.split()[0] == "python" for d in depends if d):
            continue
        pypi = normalize(names.get(name, name))
        if pypi not in provided or pypi == name:
            provided[pypi] = version
    return provided


# ---- wheel tags --------------------------------------------------------------------------------


def tag_priority(platform: str, python_version: str) -> dict[Any, int]:
    """``{tag: rank}`` of :func:`platform_tags` (0 is best), computed once per platform and Python."""
    return _tag_priority(platform, ".".join(python_version.split(".")[:2]))


@functools.lru_cache(maxsize=32)
def _tag_priority(platform: str, python: str) -> dict[Any, int]:
    return {t: i for i, t in enumerate(platform_tags(platform, python))}


def platform_tags(platform: str, python_version: str) -> list[Any]:
    """The wheel tags a CPython ``python_version`` on ``platform`` accepts, best first.

    The floors are dlsetup's (``__glibc`` 2.28 on Linux: manylinux_2_28 down to manylinux_2_5;
    macOS 11.0), as uv is told.
    """
    from packaging import tags

    info = PLATFORM_INFO[platform]
    major, minor = (int(x) for x in python_version.split(".")[:2])
    arch = info.arch
    platforms: list[str] = []
    if info.os == "linux":
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        for glibc_minor in range(28, 4, -1):
            platforms.append(f"manylinux_2_{glibc_minor}_{arch}")
            if glibc_minor in legacy:
                platforms.append(f"{legacy[glibc_minor]}_{arch}")
        platforms.append(f"linux_{arch}")
    elif info.os == "osx":
        platforms = list(tags.mac_platforms((11, 0), arch))
    else:
        platforms = ["win_amd64"]
    interpreter = f"cp{major}{minor}"
    return [
        *tags.cpython_tags((major, minor), platforms=platforms),
        *tags.compatible_tags((major, minor), interpreter, platforms),
    ]


def best_wheel(urls: Sequence[str], priority: Mapping[Any, int]) -> str | None:
    """The URL among ``urls`` whose wheel tags rank best in ``priority`` (None: none fits)."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    best: tuple[int, str] | None = None
    if len(urls) == 1 and urls[0].endswith("-none-any.whl"):
        return urls[0]  # fits everywhere: nothing to rank
    for url in urls:
        try:
            _, _, _, wheel_tags = parse_wheel_filename(url.rsplit("/", 1)[-1].split("#")[0])
        except InvalidWheelFilename:
            continue
        rank = min((priority[t] for t in wheel_tags if t in priority), default=None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, url)
    return best[1] if best else None


# ---- stubs for the conda part --------------------------------------------------------------------


def _stub_wheels(directory: Path, provided: Mapping[str, str]) -> list[str]:
    """Metadata-only wheels for the conda part; returns the ``name==version`` constraints."""
    from packaging.version import InvalidVersion, Version

    constraints = []
    for name, version in sorted(provided.items()):
        try:
            Version(version)
        except InvalidVersion:
            continue  # not a PEP 440 version: uv cannot be told about it
        dist = re.sub(r"[-_.]+", "_", name)
        info = f"{dist}-{version}.dist-info"
        members = {
            f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: dlsetup\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n",
            f"{info}/RECORD": "",
        }
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for path, text in members.items():
                archive.writestr(path, text)
        (directory / f"{dist}-{version}-py3-none-any.whl").write_bytes(buffer.getvalue())
        constraints.append(f"{name}=={version}")
    return constraints


# ---- dependencies of a wheel ---------------------------------------------------------------------


def _metadata_text(url: str, solve_url: str) -> str | None:
    """The ``METADATA`` of the wheel at ``url``: from the file for ``file://``, else the index's
    PEP 658 ``.metadata`` (``solve_url``: the URL with credentials filled in)."""
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        path = Path(unquote(urlparse(url).path))
        try:
            with zipfile.ZipFile(path) as archive:
                name = next(
                    n
                    for n in archive.namelist()
                    if n.endswith(".dist-info/METADATA") and n.count("/") == 1
                )
                return archive.read(name).decode("utf-8", "replace")
        except (OSError, zipfile.BadZipFile, StopIteration):
            return None
    from dlsetup.envs.http_auth import opener

    try:
        # http(s) URLs from the index uv resolved against; its credentials stay on its host
        with opener().open(
            _with_basic_auth(solve_url + ".metadata"), timeout=METADATA_TIMEOUT_S
        ) as response:
            data: bytes = response.read(16 * 1024 * 1024)
            return data.decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def _with_basic_auth(url: str) -> Any:
    """A ``urllib`` request for ``url``, its user-info sent as basic auth (urllib does not)."""
    import urllib.request
    from urllib.parse import urlsplit

    from dlsetup.envs.http_auth import split_auth

    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {urlsplit(url).scheme}")
    bare, auth = split_auth(url)
    return urllib.request.Request(bare, headers=auth)  # noqa: S310 - http(s) only, checked above


def requires_dist(metadata: str, environment: Mapping[str, str]) -> dict[str, str]:
    """``{name: constraint}`` of ``metadata``'s ``Requires-Dist`` that apply in ``environment``
    (markers evaluated, extras' requirements left out), as conda-lock's solver writes them."""
    from email.parser import HeaderParser

    from packaging.requirements import InvalidRequirement, Requirement

    out: dict[str, str] = {}
    for value in HeaderParser().parsestr(metadata).get_all("Requires-Dist") or []:
        try:
            req = Requirement(value)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({**environment, "extra": ""}):
            continue
        out[normalize(req.name)] = str(req.specifier) or "*"
    return out


def marker_environment(platform: str, python_version: str) -> dict[str, str]:
    """PEP 508 marker values of CPython ``python_version`` on ``platform``."""
    info = PLATFORM_INFO[platform]
    machine = {("osx", "arm64"): "arm64", ("win", "x86_64"): "AMD64"}.get(
        (info.os, info.arch), info.arch
    )
    system = {"linux": "Linux", "osx": "Darwin", "win": "Windows"}[info.os]
    return {
        "implementation_name": "cpython",
        "implementation_version": python_version,
        "os_name": "nt" if info.os == "win" else "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": system,
        "platform_version": "",
        "python_full_version": python_version,
        "python_version": ".".join(python_version.split(".")[:2]),
        "sys_platform": {"linux": "linux", "osx": "darwin", "win": "win32"}[info.os],
    }


# ---- the resolution ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Index:
    """An index as uv gets it (credentials filled in), and its host as the lock writes it.

    Attributes:
        solve: the index URL, placeholders filled in.
        plain: ``scheme://host[:port]`` without credentials.
        stored: the same with the placeholders as written (equal to ``plain`` without any):
            a wheel under ``plain`` is written under ``stored``, as conda-lock's
            ``PipRepository.normalize_solver_url`` does.
        solve_host: the same with the credentials filled in.
    """

    solve: str
    plain: str
    stored: str
    solve_host: str


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _indexes(request: PypiRequest) -> tuple[_Index | None, tuple[_Index, ...]]:
    def one(url: str) -> _Index:
        solve = expand_auth(url)
        stored = strip_auth(url) if placeholders(url) else strip_auth(solve)
        return _Index(solve, _host(strip_auth(solve)), _host(stored), _host(solve))

    primary = one(request.index_url) if request.index_url else None
    return primary, tuple(one(u) for u in request.extra_index_urls)


def _stored_url(url: str, indexes: Sequence[_Index]) -> str:
    """A wheel URL as the lock writes it: on an index's host with placeholders, with them."""
    bare = strip_auth(url)
    for index in indexes:
        if index.stored != index.plain and bare.startswith(index.plain + "/"):
            return index.stored + bare[len(index.plain) :]
    return bare


def _solve_url(url: str, indexes: Sequence[_Index]) -> str:
    """A wheel URL with the credentials of the index on its host (to fetch its metadata)."""
    bare = strip_auth(url)
    for index in indexes:
        if index.solve_host != index.plain and bare.startswith(index.plain + "/"):
            return index.solve_host + bare[len(index.plain) :]
    return url


def _uv_error(stderr: str, request: PypiRequest, uv_platform: str) -> SolveError:
    lines = [
        line
        for line in stderr.strip().splitlines()
        if line.strip() and not line.startswith("warning:")
    ]
    tail = redact("\n".join(lines[-12:]))
    where = (
        f"{request.platform} (Python {request.python_version}, uv --python-platform {uv_platform})"
    )
    missing = _NO_WHEEL_RE.search(stderr)
    if missing is not None:
        return SolveError(
            f"PyPI package {missing.group('name')} has no wheel for {where}; uv says:\n{tail}",
            fix=f"pin a version of {missing.group('name')} that has a wheel for {request.platform}, "
            f"install it from conda instead, or put it under a selector (# [not "
            f"{PLATFORM_INFO[request.platform].selector}]) so {request.platform} goes without it",
        )
    return SolveError(
        f"could not resolve the pip: section for {where}; uv says:\n{tail}",
        fix="check the pip: requirements against each other and against the conda packages "
        "(uv sees those as installed, at their conda versions), and the --index-url",
    )


def resolve(request: PypiRequest, *, cache_dir: Path | None = None) -> PypiSolution:
    """Resolve one platform's ``pip:`` requirements with uv (see the module's docstring).

    Raises:
        SolveError: unsatisfiable, no wheel for the platform, or an index that cannot be read.
        MissingToolError: no uv.
        InputError: an index's ``${VAR}`` is not set.
    """
    start = time.perf_counter()
    info = PLATFORM_INFO[request.platform]
    primary, extra = _indexes(request)
    all_indexes = (*((primary,) if primary else ()), *extra)
    provided_names = {normalize(n) for n in request.provided}
    satisfied = []
    for text in request.requirements:
        from packaging.requirements import Requirement

        name = normalize(Requirement(text).name)
        if name in provided_names:
            satisfied.append(f"{name} {request.provided[name]}")
    # an index with credentials: a private uv cache (its index entries keep a query token)
    given = (request.index_url, *request.extra_index_urls)
    with (
        tempfile.TemporaryDirectory(prefix="dlsetup-pypi-") as tmp,
        uv_cache(given, cache_dir) as cache,
    ):
        work = stubs = Path(tmp)  # one directory: uv's --find-links reads only the wheels in it
        constraints = _stub_wheels(stubs, request.provided)
        (work / "requirements.in").write_text("\n".join(request.requirements) + "\n", "utf-8")
        (work / "constraints.txt").write_text("\n".join(constraints) + "\n", "utf-8")
        out = work / "pylock.toml"
        argv = [
            uv_binary(),
            "pip",
            "compile",
            str(work / "requirements.in"),
            "--constraints",
            str(work / "constraints.txt"),
            "--find-links",
            str(stubs),
            "--format",
            "pylock.toml",
            "--output-file",
            str(out),
            # uv needs an interpreter only to build sdists (never: wheels only); naming this one
            # spares it a search for a 3.X.Y that takes about a second
            "--python",
            sys.executable,
            "--python-version",
            request.python_version,
            "--python-platform",
            info.uv_platform,
            "--generate-hashes",
            "--only-binary",
            ":all:",
            "--no-header",
            "--no-config",
            "--no-python-downloads",
            "--quiet",
        ]
        env = uv_environment()  # the caller's source settings never reach this uv
        if primary is not None:
            env["UV_DEFAULT_INDEX"] = primary.solve
        if extra:
            env["UV_INDEX"] = " ".join(i.solve for i in extra)
        if cache is not None:
            env["UV_CACHE_DIR"] = str(cache)
        if info.os == "osx":
            floor = next((f.version for f in info.floors if f.name == "__osx"), "11.0")
            env["MACOSX_DEPLOYMENT_TARGET"] = floor
        try:
            proc = children.run(argv, timeout=UV_TIMEOUT_S, grace=5.0, env=env)
        except OSError as exc:
            raise MissingToolError(
                f"cannot run uv: {exc}", fix="reinstall dlsetup (it depends on the uv package)"
            ) from exc
        if proc.timed_out:
            raise SolveError(
                f"uv did not resolve the pip: section for {request.platform} within "
                f"{UV_TIMEOUT_S} s",
                fix="check the network and the --index-url, or trim the pip: section",
            )
        if proc.returncode != 0:
            raise _uv_error(proc.stderr, request, info.uv_platform)
        import tomllib

        document = tomllib.loads(out.read_text(encoding="utf-8"))
    packages, without_metadata = _packages(document, request, provided_names, all_indexes)
    return PypiSolution(
        platform=request.platform,
        packages=packages,
        provided_by_conda=tuple(satisfied),
        resolve_ms=(time.perf_counter() - start) * 1000,
        without_metadata=without_metadata,
    )


def _packages(
    document: Mapping[str, Any],
    request: PypiRequest,
    provided: set[str],
    indexes: Sequence[_Index],
) -> tuple[tuple[PypiPackage, ...], tuple[str, ...]]:
    """The lock's PyPI packages from uv's ``pylock.toml``: conda's left out, best wheel chosen."""
    priority = tag_priority(request.platform, request.python_version)
    chosen: list[tuple[str, str, str, str]] = []
    for entry in document.get("packages", []):
        name = normalize(str(entry["name"]))
        if name in provided:
            continue
        wheels = {str(w["url"]): w for w in entry.get("wheels", [])}
        url = best_wheel(list(wheels), priority)
        if url is None:
            raise SolveError(
                f"PyPI package {name} {entry.get('version')} has no wheel for {request.platform} "
                f"(Python {request.python_version}) in uv's resolution",
                fix=f"pin a version of {name} with a wheel for {request.platform}, or install it "
                "from conda",
            )
        sha256 = str(wheels[url].get("hashes", {}).get("sha256", ""))
        if not sha256:
            raise SolveError(
                f"the index gives no sha256 for {url.rsplit('/', 1)[-1]}; a lock without hashes "
                "cannot be verified",
                fix="use an index that publishes sha256 hashes (PyPI and PEP 503 indexes do)",
            )
        chosen.append((name, str(entry["version"]), url, sha256))
    environment = marker_environment(request.platform, request.python_version)

    def metadata(c: tuple[str, str, str, str]) -> str | None:
        return _metadata_text(c[2], _solve_url(c[2], indexes))

    if all(c[2].startswith("file://") for c in chosen):
        texts = [metadata(c) for c in chosen]  # local zips: faster than starting threads
    else:
        with ThreadPoolExecutor(max_workers=8) as pool:
            texts = list(pool.map(metadata, chosen))
    packages, without_metadata = [], []
    for (name, version, url, sha256), text in zip(chosen, texts, strict=True):
        if text is None:  # listed once, summed up by the caller (one line, not one per package)
            without_metadata.append(f"{name} {version}")
        packages.append(
            PypiPackage(
                name,
                version,
                _stored_url(url, indexes),
                sha256,
                requires_dist(text, environment) if text is not None else {},
            )
        )
    return tuple(sorted(packages, key=lambda p: p.name)), tuple(sorted(without_metadata))


def resolve_all(
    requests: Sequence[PypiRequest], *, cache_dir: Path | None = None
) -> dict[str, PypiSolution]:
    """:func:`resolve` for each platform, the platforms side by side (one uv process each)."""
    if len(requests) <= 1:
        return {r.platform: resolve(r, cache_dir=cache_dir) for r in requests}
    with ThreadPoolExecutor(max_workers=min(4, len(requests))) as pool:
        results = list(pool.map(lambda r: resolve(r, cache_dir=cache_dir), requests))
    return {r.platform: r for r in results}
