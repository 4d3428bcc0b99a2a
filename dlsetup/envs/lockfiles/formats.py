"""Read every lock a user brings: conda-lock v1, explicit (``@EXPLICIT``) and pixi.lock.

The format is detected from the content, never from the file name:

* **conda-lock v1** (``version: 1`` and ``package:``), as conda-lock writes it: read and
  validated with conda-lock's own models (``conda_lock.lockfile``), categories chosen as
  ``conda-lock install`` chooses them (``main`` and ``dev`` by default, ``--no-dev`` drops
  ``dev``, ``--extras NAME`` adds a category). Its conda packages become rattler records through
  ``rattler.LockFile``; where rattler rejects a genuine file (py-rattler 0.28 refuses PyPI
  entries whose dependency specs are conda-lock's ``*`` or ``||`` ranges, and plain-string
  channels) it is given the conda part of the same, already validated file with channels in the
  mapping form, and nothing else is changed. PyPI entries (``manager: pip``) are kept for uv.
* **explicit**: ``conda list --explicit [--md5|--sha256]`` and ``conda-lock render -k explicit``
  output: one archive URL a line, with an ``#md5`` or ``#sha256:``/``#sha256=`` fragment, and
  conda-lock's ``# pip NAME @ URL#sha256=HEX`` lines. The package metadata (``noarch``, depends)
  is read from each verified archive's ``info/index.json`` at install time.
* **pixi.lock** (``version: 4`` to ``7`` with ``environments:``): read with ``rattler.LockFile``;
  ``--environment NAME`` chooses one (default ``default``), its PyPI packages included.

Every package the chosen environment, platform and categories hold ends up in the returned
:class:`LockedEnvironment`, or reading fails naming it: nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from dlsetup.envs.credentials import canonical
from dlsetup.envs.lockfiles.condalock_yaml import load_conda_lock
from dlsetup.errors import InputError

LockFormat = Literal["conda-lock-v1", "explicit", "pixi", "pylock"]

#: what each supported format is, in the words messages and docs use: every format
#: :func:`dlsetup.envs.pipeline.lock_format` detects, of every backend
FORMAT_NAMES: dict[str, str] = {
    "conda-lock-v1": "conda-lock v1 (*.conda-lock.yml, version: 1)",
    "explicit": "explicit (@EXPLICIT: conda list --explicit, conda-lock render -k explicit)",
    "pixi": "pixi.lock (version 4 to 7, --environment NAME)",
    "pylock": "PEP 751 pylock.toml (lock-version = ..., built as a venv)",
}
#: every lock ``create --from-lock`` builds: the conda formats and PEP 751 (a venv)
SUPPORTED = "; ".join(FORMAT_NAMES.values())

#: conda-lock install's defaults: ``--dev`` on, no extras
DEFAULT_DEV = True


#: what a PyPI entry of a lock names (:attr:`PypiPackage.source`)
PypiSource = Literal["wheel", "sdist", "vcs", "path"]
#: the file name endings of source distributions (PEP 625's ``.tar.gz`` and the older ones)
SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")
_VCS_SCHEMES = ("git", "hg", "svn", "bzr")


@dataclass(frozen=True)
class PypiPackage:
    """One PyPI distribution of a lock, installed by uv with its hash.

    Attributes:
        name: the distribution name as the lock writes it.
        version: its version.
        url: where the file lies (``https://`` or ``file://``; ``${VAR}`` placeholders kept).
        sha256: the file's sha256 in hex, or ``None`` when the lock has none (refused at install).
        requires_python: the ``Requires-Python`` the lock records, if any.
    """

    name: str
    version: str
    url: str
    sha256: str | None
    requires_python: str | None = None

    @property
    def file_name(self) -> str:
        """The file name at the end of :attr:`url`."""
        return unquote(urlparse(self.url).path.rsplit("/", 1)[-1])

    @property
    def source(self) -> PypiSource:
        """What :attr:`url` names: a ``wheel``, an ``sdist`` (a source archive), a ``vcs``
        checkout (``git+``, ``hg+``, ``svn+``, ``bzr+``: a revision, no file hash), or a
        ``path`` (a local directory: an editable or path source). A remote URL that names
        neither a wheel nor a known archive is taken for an ``sdist`` (it is not a wheel: it
        would be built)."""
        scheme = urlparse(self.url).scheme.lower()
        if scheme.split("+", 1)[0] in _VCS_SCHEMES and (scheme == "git" or "+" in scheme):
            return "vcs"
        name = self.file_name.lower()
        if name.endswith(".whl"):
            return "wheel"
        if name.endswith(SDIST_SUFFIXES) or scheme not in ("file", ""):
            return "sdist"
        return "path"


@dataclass(frozen=True)
class LockedEnvironment:
    """What one platform of one environment of a lock installs.

    Attributes:
        path: the lock file.
        format: the detected format (:data:`LockFormat`).
        environment: the environment chosen (pixi.lock), else ``default``.
        platform: the conda platform (``linux-64`` ...).
        channels: the lock's conda channels, as written.
        conda: rattler ``RepoDataRecord`` objects, one per conda package.
        pypi: the PyPI packages, installed after the conda ones.
        categories: the conda-lock categories installed (empty for other formats).
        metadata_from_archive: the conda records carry only name, version, build, URL and
            hashes (explicit locks); the rest is read from each verified archive.
    """

    path: Path
    format: str
    environment: str
    platform: str
    channels: tuple[str, ...]
    conda: list[Any]
    pypi: tuple[PypiPackage, ...] = ()
    categories: tuple[str, ...] = ()
    metadata_from_archive: bool = False


def _malformed(path: Path, what: str, fix: str | None = None) -> InputError:
    return InputError(
        f"{path} is not a readable lock: {what}",
        fix=fix or f"regenerate it with the tool that wrote it; dlsetup reads {SUPPORTED}",
    )


# --- detection --------------------------------------------------------------------------------


def _yaml_load(text: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader


_EXPLICIT_RE = re.compile(r"^\s*@EXPLICIT\s*$", re.MULTILINE)
_VERSION_RE = re.compile(r"^version: ?([0-9]{1,2})[ \t]*\r?$", re.MULTILINE)
_PIXI_RE = re.compile(r"^environments:[ \t]*\r?$", re.MULTILINE)


def _describe_unsupported(path: Path, text: str, data: Any) -> str:
    """What an unsupported file looks like, in a few words."""
    name = path.name
    stripped = text.lstrip()
    if name.endswith(".toml") or stripped.startswith(("lock-version", "version =", "[[package]]")):
        if "lock-version" in text:
            return (
                "a PEP 751 lock (named pylock.toml or pylock.NAME.toml, create builds it as a venv)"
            )
        return "a TOML lock (uv.lock or poetry.lock)"
    if isinstance(data, Mapping):
        if "dependencies" in data and "package" not in data:
            return "an environment file (channels/dependencies), not a lock"
        version = data.get("version")
        if "package" in data and version not in (None, 1):
            return f"a conda-lock file of version {version}"
        if "environments" in data:
            return f"a pixi.lock of version {version}"
        return "a YAML document that is no known lock"
    if re.match(r"^[A-Za-z0-9_.\-\[\]]+\s*(==|>=|@)", stripped):
        return "a pip requirements file"
    return "in no lock format dlsetup knows"


#: PEP 751's file names: ``pylock.toml``, or ``pylock.NAME.toml`` with a NAME without dots
PEP751_NAME_RE = re.compile(r"^pylock(\.[^.]+)?\.toml$")
_PEP751_KEY_RE = re.compile(r"^lock-version[ \t]*=", re.MULTILINE)


def pep751_name_error(path: Path) -> InputError | None:
    """The error for a PEP 751 lock (recognised by its content) whose file name PEP 751 does
    not allow, naming the name to rename it to; ``None`` for an allowed name. uv and pip read a
    PEP 751 lock only as ``pylock.toml`` or ``pylock.NAME.toml``."""
    if PEP751_NAME_RE.match(path.name):
        return None
    stem = path.name.removesuffix(".toml")
    parts = [p for p in stem.split(".") if p and p not in ("pylock", "lock")]
    middle = "-".join(parts)
    better = path.with_name(f"pylock.{middle}.toml" if middle else "pylock.toml")
    return InputError(
        f"{path} is a PEP 751 lock; PEP 751 names a lock pylock.toml or pylock.NAME.toml: "
        f"rename it to {better.name}",
        fix=f"mv {path} {better} (uv and pip, like dlsetup, read a PEP 751 lock only under such "
        "a name)",
    )


def detect_format(path: Path, text: str) -> tuple[str, Any]:
    """The format of the lock ``text`` (read from ``path``) and its parsed YAML (or ``None``).

    Raises:
        InputError: not a supported lock; the message names what it looks like and the
            supported formats.
    """
    if _EXPLICIT_RE.search(text):
        return "explicit", None
    # recognised: the venv backend builds it, under its name (``in`` first: a fast scan)
    if "lock-version" in text and _PEP751_KEY_RE.search(text):
        raise pep751_name_error(path) or InputError(
            f"{path} is a PEP 751 lock, which the venv backend builds",
            fix=f"dlsetup create --from-lock {path} (its content chooses the venv backend)",
        )
    version = _VERSION_RE.search(text)
    if version and 4 <= int(version.group(1)) <= 7 and _PIXI_RE.search(text):
        return "pixi", None  # rattler reads (and judges) it: no second YAML parse
    data: Any = None
    try:
        data = (
            _yaml_load(text) if not (version and version.group(1) == "1") else load_conda_lock(text)
        )
    except Exception as exc:  # yaml.YAMLError, or a scanner error on binary junk
        if not text.lstrip().startswith(("[", "lock-version", "version =")):
            raise _malformed(path, f"it is neither YAML nor an @EXPLICIT list ({exc})") from exc
    if isinstance(data, Mapping):
        version = data.get("version")
        if version == 1 and "package" in data:
            return "conda-lock-v1", data
        if isinstance(version, int) and 4 <= version <= 7 and "environments" in data:
            return "pixi", data
    raise InputError(
        f"{path} is {_describe_unsupported(path, text, data)}; it is not a lock dlsetup reads",
        fix=f"dlsetup create --from-lock reads {SUPPORTED}",
    )


# --- conda-lock v1 ----------------------------------------------------------------------------


def _first_validation_error(exc: Exception) -> str:
    if isinstance(exc, KeyError) and exc.args:  # a model validator met a bad or missing field
        return f"a package's {exc.args[0]!r} is missing or invalid"
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return f"{where}: {first.get('msg', '')}"
        except Exception:  # noqa: S110 - fall back to the exception's own text
            pass
    lines = str(exc).strip().splitlines()
    if lines:
        return lines[0]
    if isinstance(exc, AssertionError):  # conda-lock asserts one entry per package and category
        return "a package is listed twice for one platform and category, or inconsistently"
    return type(exc).__name__


def _subdir_of(url: str) -> str:
    parts = urlparse(url).path.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 else ""


def _rattler_conda_records(
    path: Path, data: Mapping[str, Any], platform: str, channels: list[str]
) -> list[Any]:
    """rattler's records for ``platform`` of a conda-lock v1 file (see the module docstring)."""
    import rattler

    env = None
    readable = all(p.get("manager") != "pip" for p in data["package"]) and all(
        isinstance(c, Mapping) for c in data["metadata"].get("channels", [])
    )
    if readable:  # nothing py-rattler 0.28 is known to reject: read the file itself
        with contextlib.suppress(Exception):
            env = rattler.LockFile.from_path(path).default_environment()
    if env is None:
        import json
        import tempfile

        conda_only = {
            "version": 1,
            "metadata": {
                **data["metadata"],
                "channels": [{"url": c, "used_env_vars": []} for c in channels],
            },
            "package": [p for p in data["package"] if p.get("manager") == "conda"],
        }
        with tempfile.TemporaryDirectory(prefix="dlsetup-lock-") as tmp:
            copy = Path(tmp) / "conda-part.conda-lock.yml"  # JSON: YAML that is quick to write
            copy.write_text(json.dumps(conda_only, default=str), encoding="utf-8")
            try:
                env = rattler.LockFile.from_path(copy).default_environment()
            except Exception as exc:
                raise _malformed(path, f"its conda packages cannot be read: {exc}") from exc
    if env is None:
        raise _malformed(path, "it has no packages")
    return list(env.conda_repodata_records().get(platform, []))


def _categories(dev: bool, extras: Iterable[str]) -> set[str]:
    """The categories ``conda-lock install`` installs for these options."""
    chosen = {"main", *extras}
    if dev:
        chosen.add("dev")
    return chosen


def _read_conda_lock_v1(
    path: Path, data: Any, platform: str, *, dev: bool, extras: tuple[str, ...]
) -> LockedEnvironment:
    from conda_lock.lockfile.v1.models import Lockfile as LockfileV1
    from conda_lock.lockfile.v2prelim.models import lockfile_v1_to_v2

    content = {k: v for k, v in data.items() if k != "version"}
    metadata = content.get("metadata")
    if isinstance(metadata, Mapping) and not isinstance(metadata.get("channels", []), list):
        # conda-lock's model would take a string for a list of one-character channels
        raise _malformed(
            path,
            f"metadata.channels is {type(metadata['channels']).__name__} "
            f"{str(metadata['channels'])[:60]!r}, not a list of channels",
            fix="regenerate it with conda-lock or dlsetup lock",
        )
    try:
        lockfile = lockfile_v1_to_v2(LockfileV1.model_validate(content))
    except Exception as exc:
        rejected = _malformed(
            path,
            f"conda-lock's model rejects it ({_first_validation_error(exc)})",
            fix="regenerate it with conda-lock or dlsetup lock",
        )
        # the other library's judgement: a file rattler reads is installed as rattler reads it
        # (every category: rattler has none); the integrity checks still apply to every package
        return _read_with_rattler_only(path, platform, rejected, exc)
    platforms = sorted({p.platform for p in lockfile.package})
    if platform not in platforms:
        raise InputError(
            f"{path} has no packages for {platform}; it has: {', '.join(platforms) or 'none'}",
            fix=f"lock for this machine: dlsetup lock TARGET --platform {platform}",
        )
    known = {c for p in lockfile.package for c in p.categories}
    unknown = sorted(set(extras) - known)
    if unknown:
        raise InputError(
            f"{path} has no categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
            f"it has: {', '.join(sorted(known))}",
            fix="name one of its categories with --extras",
        )
    wanted = _categories(dev, extras)
    chosen = [p for p in lockfile.package if p.platform == platform and p.categories & wanted]
    channels = [c.url for c in lockfile.metadata.channels]
    # rattler gives a URL back with ``${VAR}`` percent-encoded: compare one spelling
    conda_urls = {
        canonical(p.url) for p in chosen if p.manager == "conda" and not p.name.startswith("__")
    }
    records = [
        r
        for r in _rattler_conda_records(path, data, platform, channels)
        if canonical(r.url) in conda_urls
    ]
    by_url = {canonical(r.url) for r in records}
    missing = sorted(conda_urls - by_url)
    if missing:  # never silent: rattler lost a package conda-lock's model has
        raise _malformed(path, f"rattler cannot read the conda package {missing[0]}")
    pypi = tuple(
        PypiPackage(name=p.name, version=p.version, url=p.url, sha256=p.hash.sha256)
        for p in sorted(chosen, key=lambda p: p.name)
        if p.manager == "pip"
    )
    return LockedEnvironment(
        path=path,
        format="conda-lock-v1",
        environment="default",
        platform=platform,
        channels=tuple(channels),
        conda=records,
        pypi=pypi,
        categories=tuple(sorted(wanted & known or {"main"})),
    )


def _read_with_rattler_only(
    path: Path, platform: str, rejected: InputError, cause: Exception
) -> LockedEnvironment:
    import rattler

    try:
        env = rattler.LockFile.from_path(path).default_environment()
    except Exception:
        env = None
    if env is None:
        raise rejected from cause
    records = env.conda_repodata_records()
    if platform not in records:
        raise InputError(
            f"{path} has no packages for {platform}; it has: {', '.join(sorted(records)) or 'none'}",
            fix=f"lock for this machine: dlsetup lock TARGET --platform {platform}",
        )
    pypi = tuple(
        sorted(
            (_pypi_of(p, path.parent) for p in env.pypi_packages().get(platform, [])),
            key=lambda p: p.name,
        )
    )
    return LockedEnvironment(
        path=path,
        format="conda-lock-v1",
        environment="default",
        platform=platform,
        channels=tuple(str(c) for c in env.channels()),
        conda=list(records[platform]),
        pypi=pypi,
    )


def _pypi_of(p: Any, base: Path) -> PypiPackage:
    try:  # py-rattler 0.28 wraps a missing hash in an object whose attributes then fail
        digest = p.hashes.sha256
    except AttributeError:
        digest = None
    sha = digest.hex() if digest else None
    return PypiPackage(
        name=p.name,
        version=str(p.version),
        url=_location_url(p.location, base),
        sha256=sha,
        requires_python=p.requires_python,
    )


# --- explicit ---------------------------------------------------------------------------------

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_ARCHIVE_RE = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)-(?P<build>[^-]+)\.(conda|tar\.bz2)$")
_PIP_LINE_RE = re.compile(r"^#\s*pip\s+(?P<name>[A-Za-z0-9_.\-]+)\s*@\s*(?P<url>\S+)\s*$")


def _split_fragment(path: Path, lineno: int, line: str) -> tuple[str, str | None, str | None]:
    """``(url, md5, sha256)`` of an explicit line."""
    url, _, fragment = line.partition("#")
    md5 = sha256 = None
    if fragment:
        if fragment.startswith(("sha256:", "sha256=")):
            sha256 = fragment[7:]
        else:
            md5 = fragment
        digest = sha256 if sha256 is not None else md5
        size = 64 if sha256 is not None else 32
        if digest is None or len(digest) != size or not _HEX.match(digest):
            raise _malformed(
                path, f"line {lineno}: {fragment[:80]!r} is neither an md5 nor a sha256:HEX"
            )
    return url.strip(), md5.lower() if md5 else None, sha256.lower() if sha256 else None


def _record_from_line(
    path: Path, lineno: int, url: str, md5: str | None, sha256: str | None
) -> Any:
    import rattler

    name = unquote(urlparse(url).path.rsplit("/", 1)[-1])
    match = _ARCHIVE_RE.match(name)
    subdir = _subdir_of(url)
    if not match or not subdir or "://" not in url:
        raise _malformed(
            path, f"line {lineno}: {url[:120]} is not a conda archive URL (CHANNEL/SUBDIR/FILE)"
        )
    record = rattler.PackageRecord(
        name=match["name"],
        version=match["version"],
        build=rattler.BuildString(match["build"]),
        build_number=0,
        subdir=subdir,
        md5=bytes.fromhex(md5) if md5 else None,
        sha256=bytes.fromhex(sha256) if sha256 else None,
    )
    channel = url.rsplit("/", 2)[0]
    return rattler.RepoDataRecord(record, name, url, channel + "/")


def _read_explicit(path: Path, text: str, platform: str) -> LockedEnvironment:
    records: list[Any] = []
    pypi: list[PypiPackage] = []
    channels: list[str] = []
    declared: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line == "@EXPLICIT":
            continue
        if line.startswith("#"):
            if m := re.match(r"^#\s*platform:\s*(\S+)", line):
                declared = m.group(1)
            elif m := _PIP_LINE_RE.match(line):
                url, _, fragment = m["url"].partition("#")
                sha = fragment[7:] if fragment.startswith(("sha256=", "sha256:")) else None
                pypi.append(PypiPackage(m["name"], _version_of_wheel(url), url, sha))
            continue
        url, md5, sha256 = _split_fragment(path, lineno, line)
        rec = _record_from_line(path, lineno, url, md5, sha256)
        records.append(rec)
        if rec.channel not in channels:
            channels.append(rec.channel)
    if declared is not None and declared != platform:
        raise InputError(
            f"{path} is an explicit lock for {declared}, not for this machine's {platform}",
            fix=f"render one for {platform}: conda-lock render -k explicit -p {platform} LOCK",
        )
    if not records:
        raise _malformed(path, "it has an @EXPLICIT line but no package URLs")
    return LockedEnvironment(
        path=path,
        format="explicit",
        environment="default",
        platform=platform,
        channels=tuple(c.rstrip("/") for c in channels),
        conda=records,
        pypi=tuple(pypi),
        metadata_from_archive=True,
    )


def _version_of_wheel(url: str) -> str:
    name = unquote(urlparse(url).path.rsplit("/", 1)[-1])
    parts = name.split("-")
    return parts[1] if len(parts) >= 3 else ""


# --- pixi.lock --------------------------------------------------------------------------------


def _location_url(location: str, base: Path) -> str:
    """A pixi.lock location as a URL (rattler gives local files as plain paths, relative to the
    lock's directory ``base``)."""
    if "://" in location or location.startswith(("git+", "hg+", "svn+", "bzr+")):
        return location
    return (base / location).resolve().as_uri()


def _read_pixi(path: Path, platform: str, environment: str) -> LockedEnvironment:
    import rattler

    try:
        lock = rattler.LockFile.from_path(path)
    except Exception as exc:
        raise _malformed(
            path,
            f"rattler cannot read this pixi.lock ({_first_validation_error(exc)})",
            fix="regenerate it with pixi lock",
        ) from exc
    names = [name for name, _ in lock.environments()]
    env = lock.environment(environment)
    if env is None:
        raise InputError(
            f"{path} has no environment {environment!r}; it has: {', '.join(sorted(names)) or 'none'}",
            fix="choose one with --environment NAME",
        )
    by_name = {str(p): p for p in env.platforms()}
    if platform not in by_name:
        raise InputError(
            f"environment {environment!r} of {path} has no packages for {platform}; "
            f"it has: {', '.join(sorted(by_name)) or 'none'}",
            fix=f"add {platform} to the pixi workspace's platforms and run pixi lock",
        )
    packages = env.packages(by_name[platform]) or []
    records = list(env.conda_repodata_records_for_platform(by_name[platform]) or [])
    pypi_locked = list(env.pypi_packages_for_platform(by_name[platform]) or [])
    accounted = len(records) + len(pypi_locked)
    if accounted != len(packages):
        skipped = [
            p.name
            for p in packages
            if type(p).__name__ not in ("CondaLockedBinaryPackage", "PypiLockedPackage")
        ]
        raise InputError(
            f"environment {environment!r} of {path} holds packages dlsetup cannot install: "
            f"{', '.join(skipped) or f'{len(packages) - accounted} unknown'} (conda source "
            "packages, built from a recipe)",
            fix="build them with pixi, or lock them as binary packages",
        )
    pypi = [_pypi_of(p, path.parent) for p in pypi_locked]
    return LockedEnvironment(
        path=path,
        format="pixi",
        environment=environment,
        platform=platform,
        channels=tuple(str(c) for c in env.channels()),
        conda=records,
        pypi=tuple(sorted(pypi, key=lambda p: p.name)),
    )


# --- entry point ------------------------------------------------------------------------------


#: locks larger than this are refused unread (a 1,000-package lock is about 1 MiB)
MAX_LOCK_BYTES = 256 * 1024 * 1024


def read_lock_text(path: Path) -> str:
    """The text of the lock file ``path``, read through the one bounded reader (a regular file,
    at most :data:`MAX_LOCK_BYTES`, strict UTF-8).

    Raises:
        InputError: missing, not a regular file (never opened then), too large, not UTF-8.
    """
    from dlsetup.reading import read_text

    return read_text(path, what="lock file", max_bytes=MAX_LOCK_BYTES)


def check_options(
    path: Path,
    kind: str,
    *,
    environment: str | None = None,
    dev: bool = DEFAULT_DEV,
    extras: tuple[str, ...] = (),
) -> None:
    """Refuse the options that select part of a lock where ``kind`` (a :data:`FORMAT_NAMES`
    key) has no such part: ``--environment`` is a pixi.lock's, ``--extras``/``--no-dev`` a
    conda-lock's.

    Raises:
        InputError: an option that does not apply to the format of ``path``.
    """
    if kind != "pixi" and environment not in (None, "default"):
        raise InputError(
            f"--environment {environment} applies to pixi.lock files; {path} is "
            f"{FORMAT_NAMES[kind]}",
            fix="drop --environment",
        )
    if kind != "conda-lock-v1" and (extras or not dev):
        option = "--extras" if extras else "--no-dev"
        raise InputError(
            f"{option} applies to conda-lock files (their categories); {path} is "
            f"{FORMAT_NAMES[kind]}",
            fix=f"drop {option}"
            + (": choose a pixi environment with --environment" if kind == "pixi" else ""),
        )


def plan_text(locked: LockedEnvironment) -> str:
    """The line printed before installing ``locked``, for every backend: the conda and PyPI
    packages counted apart (a PEP 751 lock has PyPI packages only)."""
    where = f"{locked.path.name} ({locked.format}"
    if locked.format == "pixi":
        where += f", environment {locked.environment}"
    if locked.categories:
        where += f", categories {', '.join(locked.categories)}"
    counted = f"{len(locked.pypi)} PyPI packages"
    if locked.format != "pylock":
        counted = f"{len(locked.conda)} conda packages and {counted}"
    return f"Plan: {counted} for {locked.platform} from {where})"


def read_locked_environment(
    path: Path,
    platform: str,
    *,
    environment: str | None = None,
    dev: bool = DEFAULT_DEV,
    extras: tuple[str, ...] = (),
) -> LockedEnvironment:
    """Read ``path`` (any supported format) and return what ``platform`` installs.

    Args:
        path: the lock file.
        platform: the conda platform to install.
        environment: the pixi.lock environment (default ``default``); refused for other formats
            unless ``default``.
        dev: install conda-lock's ``dev`` category (``conda-lock install``'s ``--dev/--no-dev``).
        extras: more conda-lock categories (``conda-lock install``'s ``--extras``).

    Raises:
        InputError: missing, malformed or unsupported file (exit 2), an environment, platform or
            category the lock lacks, or options that do not apply to its format.
    """
    text = read_lock_text(path)
    kind, data = detect_format(path, text)
    check_options(path, kind, environment=environment, dev=dev, extras=extras)
    if kind == "explicit":
        return _read_explicit(path, text, platform)
    if kind == "pixi":
        return _read_pixi(path, platform, environment or "default")
    return _read_conda_lock_v1(path, data, platform, dev=dev, extras=tuple(extras))


__all__ = [
    "FORMAT_NAMES",
    "SDIST_SUFFIXES",
    "SUPPORTED",
    "LockedEnvironment",
    "PypiPackage",
    "PypiSource",
    "check_options",
    "detect_format",
    "pep751_name_error",
    "plan_text",
    "read_locked_environment",
]
