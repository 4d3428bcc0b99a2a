"""Install a lock's PyPI packages with uv into a staged environment: exactly those files, hashed.

Called by :mod:`dlsetup.envs.conda.install` after the conda packages are linked into the staged
prefix and before it is moved into place, so the whole environment stays atomic.

* Before anything runs, every package must have a sha256 and be a wheel (``.whl``) whose
  platform tag fits the lock's platform; otherwise the command fails naming the package. VCS
  sources and local directories are refused naming every one (a revision is no file hash); so
  are source distributions, all named in one error, unless ``--allow-build NAME`` names them:
  uv then builds exactly those (``--only-binary :all: --no-binary NAME``: every other package
  and every build requirement from a wheel), each after its sha256 is verified, in uv's
  isolated build environment; their build backend runs (arbitrary code).
* uv (the ``uv`` PyPI package, found with ``uv.find_uv_bin()``) installs exactly the locked
  URLs: ``uv pip install --python STAGED_PYTHON --no-deps --require-hashes --no-build
  --no-config -r REQS`` where every line is ``NAME @ URL --hash=sha256:HEX``. A file whose hash
  differs is refused by uv, and reported naming the package (exit 4).
* ``${VAR}`` placeholders in URLs are filled only in the private requirements file (mode 0600,
  removed afterwards), never on uv's command line or in a message.
* uv runs as the leader of a process group of its own; Ctrl-C or SIGTERM ends the group (and
  the caller then removes the partial build).
* Scripts uv writes carry the staged interpreter's path; they are rewritten to the final prefix.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dlsetup import children
from dlsetup.envs.backend import BuildOptions
from dlsetup.envs.credentials import expand_auth, redact
from dlsetup.envs.lockfiles.formats import PypiPackage
from dlsetup.envs.pypi.uv import uv_binary, uv_cache
from dlsetup.errors import InputError, InstallError, IntegrityError
from dlsetup.platforms import PLATFORM_TABLE

#: seconds uv may take for one environment's PyPI packages
UV_TIMEOUT_S = 1800.0

#: wheel platform tags that run on each conda platform (``any`` fits all), from its table row
_PLATFORM_TAGS: dict[str, re.Pattern[str]] = {
    p.name: re.compile(p.wheel_tags) for p in PLATFORM_TABLE if p.wheel_tags
}


def _wheel_tags(file_name: str) -> set[str] | None:
    """The platform tags of a wheel file name, or ``None`` when it is not a wheel."""
    if not file_name.endswith(".whl"):
        return None
    parts = file_name[:-4].split("-")
    if len(parts) not in (5, 6):
        return None
    return set(parts[-1].split("."))


def _fits_python(file_name: str, python: tuple[int, int]) -> bool:
    """Whether some tag of the wheel runs on CPython ``python`` (interpreter and ABI tags)."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        tags = parse_wheel_filename(file_name)[3]
    except InvalidWheelFilename:
        return True  # uv judges what packaging cannot parse
    major, minor = python
    for tag in tags:
        interp, abi = tag.interpreter, tag.abi
        kind, digits = interp[:2], interp[2:]
        if kind not in ("py", "cp") or not digits.isdigit():
            continue
        if int(digits[0]) != major:
            continue
        wanted = int(digits[1:]) if len(digits) > 1 else 0
        if kind == "py" and abi == "none" and wanted <= minor:
            return True
        if kind == "cp" and abi == "abi3" and wanted <= minor:
            return True
        if kind == "cp" and wanted == minor and abi in ("none", f"cp{major}{minor}"):
            return True
    return False


def _listed(packages: Sequence[PypiPackage], what: str = "file") -> str:
    """``a 1.0 (FILE), b 2.0 (FILE)``: each package named with its file or URL, credentials
    masked."""
    return ", ".join(
        f"{pkg.name} {pkg.version} ({pkg.file_name if what == 'file' else redact(pkg.url)})"
        for pkg in packages
    )


def _allowed(names: Sequence[str]) -> set[str]:
    from packaging.utils import canonicalize_name

    return {str(canonicalize_name(name)) for name in names}


def check_sources(
    packages: Sequence[PypiPackage],
    platform: str,
    lock: Path,
    allow_build: Sequence[str] = (),
) -> None:
    """Refuse at once, naming every one, the PyPI packages that would be built: VCS and local
    directory sources always, source distributions unless ``allow_build`` names them.

    Raises:
        IntegrityError: VCS or path sources, or source distributions not named (exit 4).
        InputError: ``allow_build`` names a package that is no source distribution of the lock.
    """
    from packaging.utils import canonicalize_name

    vcs = [pkg for pkg in packages if pkg.source == "vcs"]
    if vcs:
        raise IntegrityError(
            f"{lock} has PyPI packages from a VCS source: {_listed(vcs, 'url')}. A VCS source "
            "records a revision, not the hash of a file, and is installed by building it: "
            "dlsetup installs only files whose hash the lock records (--allow-build builds only "
            "source distributions verified by their sha256)",
            fix="build a wheel of that revision (uv build, or pip wheel 'git+URL'), publish it "
            "to an index you control and lock it from there; or create without it and install "
            "it into the environment yourself: uv pip install --python ENV/bin/python 'git+URL' "
            "(that runs its build backend)",
        )
    paths = [pkg for pkg in packages if pkg.source == "path"]
    if paths:
        raise IntegrityError(
            f"{lock} has PyPI packages from a local directory (an editable or path source, "
            f"installed by building it): {_listed(paths, 'url')}; dlsetup installs only files "
            "whose hash the lock records",
            fix="create without them, then install them into the environment yourself: uv pip "
            "install --python ENV/bin/python -e PATH (that runs their build backend)",
        )
    sdists = [pkg for pkg in packages if pkg.source == "sdist"]
    allowed = _allowed(allow_build)
    unknown = sorted(allowed - {str(canonicalize_name(pkg.name)) for pkg in sdists})
    if unknown:
        raise InputError(
            f"--allow-build {unknown[0]}: {lock} has no PyPI source distribution of that name; "
            f"its source distributions: {', '.join(pkg.name for pkg in sdists) or 'none'}",
            fix="name only source distributions of the lock with --allow-build",
        )
    refused = [pkg for pkg in sdists if str(canonicalize_name(pkg.name)) not in allowed]
    if refused:
        what = (
            f"the PyPI package {refused[0].name} {refused[0].version} in {lock} is "
            f"{refused[0].file_name}, a source distribution"
            if len(refused) == 1
            else f"{len(refused)} PyPI packages in {lock} are source distributions: "
            + _listed(refused)
        )
        raise IntegrityError(
            f"{what}; dlsetup builds one only when it is named with --allow-build",
            fix=f"lock versions that have a wheel for {platform}, or build them with "
            + " ".join(f"--allow-build {pkg.name}" for pkg in refused)
            + " (this runs each one's build backend, arbitrary code, in an isolated build "
            "environment, after its sha256 is verified)",
        )


def check_packages(
    packages: Sequence[PypiPackage],
    platform: str,
    lock: Path,
    python: str | None = None,
    allow_build: Sequence[str] = (),
) -> None:
    """Refuse, before anything is installed, what cannot be installed exactly as locked.

    Args:
        packages: the lock's PyPI packages.
        platform: the conda platform installed.
        lock: the lock file (for messages).
        python: the environment's Python version from its conda part (``3.11.7``), if known:
            each wheel's interpreter/ABI tags and the lock's ``requires_python`` must fit it.
        allow_build: the source distributions the user allows to be built (``--allow-build``).

    Raises:
        IntegrityError: a package without a sha256, a VCS or path source, a source
            distribution ``allow_build`` does not name (exit 4).
        InstallError: a wheel that does not run on ``platform`` or on ``python``.
        InputError: a ``${VAR}`` in a URL whose variable is not set (naming the variable);
            ``allow_build`` naming no source distribution of the lock.
    """
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    check_sources(packages, platform, lock, allow_build)
    fits = _PLATFORM_TAGS.get(platform)
    parts = [int(p) for p in re.findall(r"\d+", python or "")[:3]]
    version = (parts[0], parts[1]) if len(parts) >= 2 else None
    for pkg in packages:
        if not pkg.sha256 or not re.fullmatch(r"[0-9a-f]{64}", pkg.sha256):
            raise IntegrityError(
                f"the PyPI package {pkg.name} {pkg.version} in {lock} has no sha256; "
                "unverifiable packages are refused",
                fix="regenerate the lock so that it records each file's hash (pixi lock, "
                "conda-lock, dlsetup lock)",
            )
        expand_auth(pkg.url)  # a ``${VAR}`` the environment lacks is named before any download
        tags = _wheel_tags(pkg.file_name)
        if tags is None:
            continue  # a source distribution the user allowed: built by uv (check_sources)
        if "any" not in tags and (fits is None or not any(fits.match(t) for t in tags)):
            raise InstallError(
                f"the PyPI package {pkg.name} {pkg.version} has no wheel for {platform}: the "
                f"lock {lock} names {pkg.file_name}",
                fix=f"lock for {platform} (dlsetup lock ... --platform {platform}), or choose a "
                f"version of {pkg.name} that publishes a {platform} wheel",
            )
        if version is None:
            continue
        if not _fits_python(pkg.file_name, version):
            raise InstallError(
                f"the PyPI package {pkg.name} {pkg.version} has no wheel for Python {python}: "
                f"the lock {lock} names {pkg.file_name}",
                fix="lock the PyPI part for the environment's Python again (dlsetup lock), or "
                f"choose a version of {pkg.name} with a wheel for Python {version[0]}.{version[1]}",
            )
        try:
            allowed = SpecifierSet(pkg.requires_python or "")
        except InvalidSpecifier:
            continue  # uv reads the wheel's own metadata
        if python and not allowed.contains(python, prereleases=True):
            raise InstallError(
                f"the PyPI package {pkg.name} {pkg.version} requires Python "
                f"{pkg.requires_python}; the environment's is {python} (lock {lock})",
                fix="lock the PyPI part for the environment's Python again (dlsetup lock)",
            )


def _requirements(packages: Sequence[PypiPackage]) -> str:
    return "".join(
        f"{pkg.name} @ {expand_auth(pkg.url)} --hash=sha256:{pkg.sha256}\n" for pkg in packages
    )


def _uv_env(cache_dir: Path | None) -> dict[str, str]:
    """No uv or pip variable of the caller but those of the user's settings that are not sources
    (certificates, keyring, cache, ...), and the user's uv.toml/pip.conf values for them
    (:mod:`dlsetup.envs.uv_settings`)."""
    from dlsetup.envs.uv_settings import SETTING_VARIABLES, forwarded_environment

    env = forwarded_environment(
        {
            k: v
            for k, v in os.environ.items()
            if k in SETTING_VARIABLES or not k.startswith(("UV_", "PIP_", "VIRTUAL_ENV"))
        }
    )
    env["UV_NO_PROGRESS"] = "1"
    env["NO_COLOR"] = "1"
    if cache_dir is not None:
        env["UV_CACHE_DIR"] = str(cache_dir)
    return env


_HASH_MISMATCH = re.compile(r"hash", re.IGNORECASE)


def _which_package(text: str, packages: Sequence[PypiPackage]) -> PypiPackage | None:
    lowered = text.lower()
    for pkg in packages:
        if pkg.file_name.lower() in lowered or f"`{pkg.name.lower()}" in lowered:
            return pkg
    for pkg in packages:
        if re.search(rf"\b{re.escape(pkg.name.lower())}\b", lowered):
            return pkg
    return None


def _fail(stderr: str, packages: Sequence[PypiPackage], lock: Path) -> None:
    text = redact(stderr.strip())
    pkg = _which_package(text, packages)
    which = f"{pkg.name} {pkg.version}" if pkg else "a PyPI package"
    last = " ".join(line.strip() for line in text.splitlines()[-6:] if line.strip())
    if _HASH_MISMATCH.search(text) and "mismatch" in text.lower():
        raise IntegrityError(
            f"hash mismatch for the PyPI package {which} of {lock.name}: the file at "
            f"{redact(pkg.url) if pkg else 'its URL'} is not the one locked; refused ({last})",
            fix="the lock or the file was changed after locking: regenerate the lock from an "
            "index you trust",
        )
    raise InstallError(
        f"uv could not install {which} from {lock.name}: {last}",
        fix="the target was left as it was; read the cause and retry",
    )


def _rewrite_scripts(staged: Path, final: Path, before: set[str]) -> None:
    """Point the scripts uv wrote at the final prefix's interpreter, not the staged one."""
    bin_dir = staged / ("Scripts" if os.name == "nt" else "bin")
    if not bin_dir.is_dir():
        return
    old, new = str(staged).encode(), str(final).encode()
    for entry in bin_dir.iterdir():
        if entry.name in before or entry.is_symlink() or not entry.is_file():
            continue
        with contextlib.suppress(OSError):
            data = entry.read_bytes()
            head, sep, rest = data.partition(b"\n")
            if not head.startswith(b"#!"):
                continue
            second, sep2, tail = rest.partition(b"\n")
            fixed = head.replace(old, new) + sep + second.replace(old, new) + sep2 + tail
            if fixed != data:
                entry.write_bytes(fixed)


def install_pypi(
    packages: Sequence[PypiPackage],
    *,
    python: Path | None,
    staged: Path,
    final: Path,
    platform: str,
    lock: Path,
    cache_dir: Path | None = None,
    options: BuildOptions | None = None,
) -> int:
    """Install ``packages`` into the staged environment whose interpreter is ``python``.

    Args:
        packages: the lock's PyPI packages for this platform (checked with
            :func:`check_packages` first).
        python: the staged environment's Python.
        staged: the staged prefix (scripts are rewritten from it to ``final``).
        final: the environment's final directory.
        platform: the conda platform installed.
        lock: the lock file (for messages).
        cache_dir: uv's cache (default: uv's own).
        options: what is built: ``allow_build``, the source distributions of ``packages`` uv
            builds (``--allow-build``), each after its sha256 is verified, in an isolated build
            environment (uv's build isolation) whose build requirements are wheels only, pinned
            and hashed by ``build_constraints`` when given (``--build-constraints``); nothing
            else is built.

    Returns:
        the number of packages installed.

    Raises:
        InputError: there are PyPI packages but the environment has no Python.
        IntegrityError: a missing or mismatched hash, naming the package.
        InstallError: uv failed (no wheel for the platform, unreachable URL), naming the package.
        KeyboardInterrupt: Ctrl-C or SIGTERM; uv's process group has been ended.
    """
    if not packages:
        return 0
    allow_build = options.allow_build if options is not None else ()
    check_packages(packages, platform, lock, allow_build=allow_build)
    if python is None:
        raise InputError(
            f"{lock} has {len(packages)} PyPI packages ({packages[0].name} ...) but no Python "
            "among its conda packages to install them into",
            fix="add python to the environment file and lock again",
        )
    uv = uv_binary()
    bin_dir = staged / ("Scripts" if os.name == "nt" else "bin")
    before = {p.name for p in bin_dir.iterdir()} if bin_dir.is_dir() else set()
    urls = [pkg.url for pkg in packages]  # credentials in one: a private uv cache
    with (
        tempfile.TemporaryDirectory(prefix="dlsetup-pypi-") as tmp,
        uv_cache(urls, cache_dir) as cache,
    ):
        reqs = Path(tmp) / "requirements.txt"
        fd = os.open(reqs, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_requirements(packages))
        argv = [
            str(uv), "pip", "install", "--python", str(python), "--no-deps", "--require-hashes",
            *build_options(packages, allow_build, constraint_args(options, Path(tmp))),
            "--no-config", "--link-mode", "copy",
            "--quiet", "-r", str(reqs),
        ]  # fmt: skip
        result = run_uv(argv, _uv_env(cache))
    if result.returncode != 0:
        refused = refused_build_requirement(result.stderr or result.stdout or "", options)
        if refused is not None:
            raise refused
        _fail(result.stderr or result.stdout or "", packages, lock)
    _rewrite_scripts(staged, final, before)
    return len(packages)


def build_options(
    packages: Sequence[PypiPackage],
    allow_build: Sequence[str],
    constraints: Sequence[str] = (),
) -> list[str]:
    """uv's options that build exactly the allowed source distributions of ``packages`` and
    nothing else: ``--no-build`` when none is allowed; else ``--only-binary :all:`` (every other
    package, and every build requirement, from a wheel) and ``--no-binary NAME`` for each
    allowed one, then ``constraints`` (``--build-constraints FILE --require-build-hashes``:
    :meth:`dlsetup.envs.build_constraints.BuildConstraints.uv_args`), which pin and hash every
    build requirement. uv's build isolation (a fresh environment per build) is its default, and
    ``--no-config`` and the cleaned environment keep a user's setting from turning it off."""
    allowed = _allowed(allow_build)
    from packaging.utils import canonicalize_name

    names = sorted(
        pkg.name
        for pkg in packages
        if pkg.source == "sdist" and str(canonicalize_name(pkg.name)) in allowed
    )
    if not names:
        return ["--no-build"]
    return [
        "--only-binary", ":all:", *(arg for name in names for arg in ("--no-binary", name)),
        *constraints,
    ]  # fmt: skip


def constraint_args(options: BuildOptions | None, directory: Path) -> list[str]:
    """uv's ``--build-constraints`` options for ``--build-constraints FILE`` (its checked pins
    written into ``directory``), or none."""
    if options is None or options.build_constraints is None:
        return []
    from dlsetup.envs.build_constraints import written

    constraints = options.build_constraints
    return constraints.uv_args(written(constraints, directory))


def building_note(packages: Sequence[PypiPackage], options: BuildOptions) -> str | None:
    """The line said before uv builds the lock's allowed sdists (``None``: none is built): what
    runs, and where the build requirements come from."""
    built = [pkg.name for pkg in packages if pkg.source == "sdist"]
    if not built:
        return None
    pinned = options.build_constraints
    source = (
        f"only from the {len(pinned.pins)} hashed pins of {pinned.path}"
        if pinned is not None
        else "unpinned"
    )
    return (
        f"Building {', '.join(built)} from source (--allow-build: the build backend runs, in an "
        f"isolated build environment, after the sha256 is verified; build requirements {source}) "
        "..."
    )


def refused_build_requirement(text: str, options: BuildOptions | None) -> IntegrityError | None:
    """The error for uv's refusal of a build requirement under ``--build-constraints`` (one
    whose hash differs from the file's pin, or one the file does not pin), from uv's message
    ``text``; ``None`` when ``text`` is no such refusal."""
    constraints = options.build_constraints if options is not None else None
    if constraints is None or "build-system.requires" not in text:
        return None
    detail = " ".join(line.strip() for line in redact(text).splitlines()[-8:] if line.strip())
    again = f"uv pip compile build-requirements.in --generate-hashes -o {constraints.path}"
    if "Hash mismatch" in text:
        return IntegrityError(
            f"a build requirement's hash differs from its pin in {constraints.path}; refused "
            f"before the build ran ({detail})",
            fix="the file the index serves is not the one pinned: find out who changed it, or "
            f"pin it again from an index you trust: {again}",
        )
    if "no trusted hash" in text:
        return IntegrityError(
            f"a build requirement is not pinned in {constraints.path} (pinned: "
            f"{', '.join(constraints.names) or 'nothing'}); refused before the build ran "
            f"({detail})",
            fix=f"add it to build-requirements.in and generate the file again: {again}",
        )
    return None


def run_uv(argv: list[str], env: dict[str, str]) -> children.Completed:
    """Run uv as the leader of its own process group (:mod:`dlsetup.children`), ended on Ctrl-C
    or SIGTERM and killed by the kernel when dlsetup dies (Linux), so no uv outlives a removed
    partial build.

    Raises:
        InstallError: uv ran past :data:`UV_TIMEOUT_S`.
    """
    done = children.run(argv, timeout=UV_TIMEOUT_S, grace=5.0, env=env)
    if done.timed_out:
        raise InstallError(
            f"uv took longer than {UV_TIMEOUT_S:.0f} s to install the PyPI packages",
            fix="check the index is reachable, then retry (the target was not touched)",
        )
    return done


def run_uv_step(args: list[str], what: str) -> str:
    """Run ``uv ARGS`` (its output returned) as create's PyPI phase runs it (:func:`run_uv`): its
    own process group, ended on Ctrl-C or SIGTERM, killed by the kernel when dlsetup dies. A
    failure is a SolveError (``what == "resolve"``) or an InstallError with uv's last lines.
    uv runs with ``--no-config`` and without the caller's source and build variables
    (:func:`dlsetup.envs.pypi.uv.uv_environment`): the sources in ``args`` are all it gets, and
    a build ``--allow-build`` names is always isolated."""
    from dlsetup.envs.pypi.uv import uv_environment
    from dlsetup.errors import InstallError, SolveError

    proc = run_uv([uv_binary(), *args, "--no-config"], uv_environment())
    if proc.returncode != 0:
        detail = "\n".join(proc.stderr.strip().splitlines()[-12:])
        raise (SolveError if what == "resolve" else InstallError)(
            f"uv could not {what}: {detail}",
            fix="read uv's message above; --torch-index-url / --index-url name other indexes",
        )
    return proc.stdout
