"""``dlsetup lock --check``: is a lock still what ``dlsetup lock`` would make from its inputs?

No solve and no network. The lock's ``metadata`` says what it was made from (``custom_metadata``'s
``dlsetup_*`` keys: target, variant, CUDA version and where it came from, GPUs, CUDA line and
virtual packages per platform; the channels, the platforms and conda-lock's ``content_hash`` per
platform). The check replays that request, with any option the user gives in place of the recorded
value, through the same rendering functions ``dlsetup lock`` uses (:func:`dlsetup.envs.files.spec.render`,
:func:`dlsetup.envs.conda.request.choose_lines`, :func:`dlsetup.envs.conda.virtual_packages.virtual_packages`), read-only,
then compares:

* the request: variant, CUDA version, GPUs, platforms, Python, channels (an option given now
  against the recorded value; where the lock's CUDA version or GPUs came from this machine's driver,
  i.e. the user asked for ``auto``, against what the driver here reports, when it reports anything);
* per platform: the CUDA line, the virtual packages, and the environment file's dependencies
  (the re-rendered source against the ``NAME.environment.yml`` beside the lock);
* conda-lock's ``content_hash``, recomputed from the re-rendered environment file and virtual
  packages. It is recomputed here without importing conda-lock (whose import alone takes about a
  second) for the specs dlsetup renders; when that does not reproduce the recorded hash, or a spec
  has a form it does not cover, conda-lock's own ``compute_content_hashes`` decides.

Values of another machine are not inputs: virtual packages the locking machine *detected*
(``__glibc``, ``__linux``) are kept as recorded, and a ``CONDA_OVERRIDE_*`` value is kept unless
the variable is set here to something else. Only the ``floor`` values (dlsetup's platform table) and
those the CUDA build needs are recomputed.

A lock ``conda-lock`` made itself (no ``dlsetup_*`` metadata) is checked as ``conda-lock
--check-input-hash`` checks it (:mod:`dlsetup.envs.conda.input_hash`).

Shipped targets (``pytorch``, ``tensorflow``, ``both``) are re-rendered from the environment files of
the installed dlsetup. A lock of the user's own environment file records no path to it: name it as
TARGET (``dlsetup lock environment.yml --check locks/env.conda-lock.yml``); without it only the
integrity of the files beside the lock is checked, and a note says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlsetup.envs.staleness import CheckRequest, CheckResult, Difference
from dlsetup.errors import InputError

if TYPE_CHECKING:
    from dlsetup.compat.lines import Gpu, LineChoice
    from dlsetup.envs.conda.virtual_packages import VirtualPackage
    from dlsetup.envs.files.spec import EnvironmentSpec, RenderedEnvironment
    from dlsetup.envs.variant import VariantChoice
    from dlsetup.probes.nvidia import NvidiaFacts

META = "dlsetup_"
#: locks larger than this are refused unread (a 1,000-package lock is about 1 MiB)
MAX_LOCK_BYTES = 256 * 1024 * 1024
#: conda-lock's timestamp of every virtual package record (part of its content hash)
_VP_TIMESTAMP = 1577854800000
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_SIMPLE_VERSION_RE = re.compile(
    r"^(?:(?:>=|<=|==|!=|>|<)?[0-9][0-9A-Za-z.*+_]*)(?:,(?:>=|<=|==|!=|>|<)[0-9][0-9A-Za-z.*+_]*)*$"
)
_DEP_LINE_RE = re.compile(r"^\s+-\s+(?P<value>.+?)(?:\s+#\s*\[(?P<selector>[A-Za-z0-9_]+)\])?\s*$")


@dataclass(frozen=True)
class LockRecord:
    """What a lock records about how it was made (read without conda-lock)."""

    path: Path
    content_hash: dict[str, str]
    channels: tuple[str, ...]
    platforms: tuple[str, ...]
    sources: tuple[str, ...]
    custom: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.custom.get(META + key, default)

    @property
    def made_by_dlsetup(self) -> bool:
        """Whether ``dlsetup lock`` made it (its ``dlsetup_*`` custom metadata), rather than
        conda-lock itself (then only conda-lock's input hash records what it was made from)."""
        return any(key.startswith(META) for key in self.custom)


def _malformed(path: Path, what: str) -> InputError:
    return InputError(
        f"malformed lock {path}: {what}",
        fix="check it against the file dlsetup lock wrote (git diff), or make it again with "
        "dlsetup lock",
    )


def _metadata_text(text: str) -> str:
    """The ``version:`` and ``metadata:`` blocks of a conda-lock v1 file: the package list, most
    of the file, is never parsed (a 1,000-package lock would take 10x longer)."""
    kept: list[str] = []
    keep = False
    for line in text.splitlines():
        if line[:1] not in ("", " ", "#", "-", "\t"):
            keep = line.split(":", 1)[0].strip() in ("version", "metadata")
        if keep:
            kept.append(line)
    return "\n".join(kept) + "\n"


def read_lock_record(path: Path) -> LockRecord:
    """Read a lock's metadata (not its packages) and check its shape.

    Raises:
        InputError: the file cannot be read, or is not a conda-lock v1 file.
    """
    from dlsetup.reading import ReadError, parse_yaml, read_text

    # a regular file (a FIFO or device is refused unopened), size-capped, strict UTF-8
    text = read_text(
        path,
        what="lock",
        max_bytes=MAX_LOCK_BYTES,
        fix="give the NAME.conda-lock.yml dlsetup lock wrote",
    )
    try:  # nesting, integers and aliases bounded
        doc = parse_yaml(_metadata_text(text), source=str(path), what="lock")
    except ReadError as exc:
        raise _malformed(path, exc.message.removeprefix(f"lock {path} ")) from exc
    if not isinstance(doc, dict) or "metadata" not in doc:
        raise _malformed(path, "no 'metadata:' section (not a conda-lock file)")
    if doc.get("version") != 1:
        raise _malformed(path, f"conda-lock format version {doc.get('version')!r}, expected 1")
    meta = doc["metadata"]
    if not isinstance(meta, dict):
        raise _malformed(path, "'metadata:' is not a mapping")
    hashes = meta.get("content_hash")
    platforms = meta.get("platforms")
    channels = meta.get("channels")
    custom = meta.get("custom_metadata") or {}
    if not isinstance(hashes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in hashes.items()
    ):
        raise _malformed(path, "'content_hash:' is not a mapping of platform to hash")
    if (
        not isinstance(platforms, list)
        or not platforms
        or not all(isinstance(p, str) for p in platforms)
    ):
        raise _malformed(path, "'platforms:' is not a list of platforms")
    if not isinstance(channels, list) or not all(
        isinstance(c, dict) and isinstance(c.get("url"), str) for c in channels
    ):
        raise _malformed(path, "'channels:' is not a list of {url: ...}")
    if not isinstance(custom, dict):
        raise _malformed(path, "'custom_metadata:' is not a mapping")
    from dlsetup.envs.files.spec import PLATFORMS, TARGETS, VARIANTS

    record = LockRecord(
        path=path,
        content_hash={str(k): str(v) for k, v in hashes.items()},
        channels=tuple(str(c["url"]) for c in channels),
        platforms=tuple(platforms),
        sources=tuple(str(s) for s in meta.get("sources") or ()),
        custom={str(k): str(v) for k, v in custom.items()},
    )
    for key, allowed in (("target", (*TARGETS, "file")), ("variant", VARIANTS)):
        if record.made_by_dlsetup and record.get(key) not in allowed:
            raise _malformed(path, f"{META}{key} is {record.get(key)!r}, not one of {allowed}")
    bad = [p for p in record.platforms if p not in PLATFORMS]
    if bad:
        raise _malformed(path, f"unknown platform {bad[0]!r}")
    return record


def _recorded_gpus(text: str | None) -> tuple[Gpu, ...]:
    """``0:6.1 NVIDIA GeForce GTX 1080; 1:8.6 ...`` (``dlsetup_gpus``) as :class:`Gpu` records."""
    from dlsetup.compat.lines import Gpu

    if not text or text == "none":
        return ()
    gpus = []
    for part in text.split(";"):
        found = re.match(r"^\s*(\d+):(\d+)\.(\d+)\s*(.*)$", part)
        if found is None:
            continue
        index, major, minor, name = found.groups()
        gpus.append(Gpu(int(index), name.strip(), (int(major), int(minor))))
    return tuple(gpus)


def _ccs(gpus: tuple[Gpu, ...]) -> str:
    return ", ".join(f"{g.cc[0]}.{g.cc[1]}" for g in gpus) or "none"


def _dependencies_by_platform(path: Path, platforms: tuple[str, ...]) -> dict[str, list[str]]:
    """The dependencies of the rendered environment file, per platform (conda-lock's selectors
    ``  # [linux64]`` applied as conda-lock applies them)."""
    import yaml

    from dlsetup.envs.files.spec import MAX_ENVIRONMENT_FILE_BYTES
    from dlsetup.platforms import PLATFORM_INFO
    from dlsetup.reading import read_text

    text = read_text(  # a regular file (a FIFO is refused unopened), size-capped, UTF-8
        path,
        what="environment file beside the lock",
        max_bytes=MAX_ENVIRONMENT_FILE_BYTES,
        fix="keep NAME.environment.yml next to NAME.conda-lock.yml (dlsetup lock writes both)",
    )
    result: dict[str, list[str]] = {p: [] for p in platforms}
    in_deps = False
    pip_indent: int | None = None  # inside the pip: section: its "- pip:" line's indentation
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            in_deps = line.rstrip() == "dependencies:"
            continue
        found = _DEP_LINE_RE.match(line) if in_deps else None
        if found is None:
            continue
        indent = len(line) - len(line.lstrip())
        if pip_indent is not None and indent <= pip_indent:
            pip_indent = None
        if found.group("value") == "pip:":
            pip_indent = indent
            continue
        raw = found.group("value")
        try:
            value = yaml.safe_load(raw) if raw[:1] in "\"'" else raw
        except yaml.YAMLError:
            value = raw
        selector = found.group("selector")
        for platform in platforms:
            if selector is None or PLATFORM_INFO[platform].selector == selector:
                result[platform].append(f"pip: {value}" if pip_indent is not None else str(value))
    return result


def pip_entries(rendered: RenderedEnvironment, platform: str) -> list[str]:
    """The ``pip:`` requirements of ``platform`` as :func:`_dependencies_by_platform` lists them."""
    return [f"pip: {r.text}" for r in rendered.pip_for(platform)]


def _spec_key(spec: str) -> str:
    from dlsetup.envs.files.spec import spec_name

    if spec.startswith("pip: "):  # a pip: requirement, by its PyPI name (packaging reads it)
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.utils import canonicalize_name

        text = spec[5:].strip()
        try:
            return "pip:" + canonicalize_name(Requirement(text).name)
        except InvalidRequirement:
            return "pip:" + text.lower()
    return spec_name(spec)


def _dependency_changes(recorded: list[str], expected: list[str]) -> list[str]:
    """``added torchvision``, ``removed scipy``, ``numpy -> numpy >=2`` (by package name)."""
    old = {_spec_key(s): s for s in recorded}
    new = {_spec_key(s): s for s in expected}
    changes = [f"added {new[n]}" for n in new if n not in old]
    changes += [f"removed {old[n]}" for n in old if n not in new]
    changes += [f"{old[n]} -> {new[n]}" for n in new if n in old and old[n] != new[n]]
    return changes


def _per_platform_messages(
    kind: str, prefix: str, per_platform: Mapping[str, list[str]], all_platforms: tuple[str, ...]
) -> list[Difference]:
    """One difference for changes every platform shares, one per platform for the rest."""
    out: list[Difference] = []
    shared: list[str] = []
    if len(per_platform) == len(all_platforms) and per_platform:
        first = next(iter(per_platform.values()))
        shared = [c for c in first if all(c in v for v in per_platform.values())]
    if shared:
        out.append(Difference(kind, None, f"{prefix}: {'; '.join(shared)}"))
    for platform, changes in per_platform.items():
        rest = [c for c in changes if c not in shared]
        if rest:
            out.append(Difference(kind, platform, f"{prefix} for {platform}: {'; '.join(rest)}"))
    return out


# ---- conda-lock's content hash, without importing conda-lock ------------------------------------


def _simple_dependency(spec: str) -> dict[str, Any] | None:
    """conda-lock's ``VersionedDependency.model_dump()`` of a match spec of the forms dlsetup
    renders (``name``, ``name VERSION``, ``name VERSION BUILD``); None for any other form (then
    conda-lock's own parser decides)."""
    tokens = spec.split()
    if not tokens or not _NAME_RE.match(tokens[0]) or len(tokens) > 3:
        return None
    version, build = "", None
    if len(tokens) >= 2:
        version = tokens[1]
        if version != "*" and not _SIMPLE_VERSION_RE.match(version):
            return None
        if version == "*" and len(tokens) == 2:
            return None  # conda's MatchSpec drops a bare "*"; leave that form to conda-lock
    if len(tokens) == 3:
        build = tokens[2]
        if not re.match(r"^[A-Za-z0-9_.*]+$", build):
            return None
    return {
        "build": build,
        "category": "main",
        "conda_channel": None,
        "extras": [],
        "hash": None,
        "manager": "conda",
        "name": tokens[0].lower(),
        "version": version,
    }


def _virtual_repo(platform: str, packages: tuple[VirtualPackage, ...]) -> dict[str, Any]:
    """conda-lock's ``virtual_package_hash`` entry for ``platform`` (its v2-compatible form)."""
    records: dict[str, Any] = {}
    for p in packages:
        build_string = "" if p.build == "0" else p.build
        build = f"{build_string}_0" if build_string else "0"
        records[f"{p.name}-{p.version}-{build}.tar.bz2"] = {
            "build": build,
            "build_number": 0,
            "build_string": build_string,
            "depends": [],
            "name": p.name,
            "noarch": "",
            "package_type": "virtual_system",
            "subdir": platform,
            "timestamp": _VP_TIMESTAMP,
            "version": p.version,
        }
    return {
        "noarch": {"info": {"subdir": "noarch"}, "packages": {}},
        platform: {"info": {"subdir": platform}, "packages": records},
    }


def fast_content_hash(
    channels: tuple[str, ...],
    dependencies: list[str],
    platform: str,
    packages: tuple[VirtualPackage, ...],
) -> str | None:
    """conda-lock's content hash of one platform, or None when a channel or spec has a form this
    does not reproduce (``${VAR}`` channels, brackets, ``::``)."""
    if any("$" in c for c in channels):
        return None
    specs = [_simple_dependency(d) for d in dependencies]
    if any(s is None for s in specs):
        return None
    content = {
        "channels": [
            json.dumps({"url": c, "used_env_vars": []}, separators=(",", ":")) for c in channels
        ],
        "specs": sorted(specs, key=lambda s: (s["manager"], s["name"])),  # type: ignore[index]
        "virtual_package_hash": _virtual_repo(platform, packages),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()


def conda_lock_content_hashes(env_text: str, vp_text: str) -> dict[str, str]:
    """conda-lock's own content hashes of an environment file and a virtual-package spec."""
    import logging
    import tempfile

    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.src_parser import make_lock_spec
    from conda_lock.virtual_package import virtual_package_repo_from_specification

    from dlsetup.envs.conda.lock import pypi_mapping_path

    logging.getLogger("conda_lock").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="dlsetup-check-") as tmp:
        env_path = Path(tmp) / "environment.yml"
        vp_path = Path(tmp) / "virtual-packages.yml"
        env_path.write_text(env_text, encoding="utf-8")
        vp_path.write_text(vp_text, encoding="utf-8")
        spec = make_lock_spec(src_files=[env_path], mapping_url=str(pypi_mapping_path()))
        hashes = compute_content_hashes(spec, virtual_package_repo_from_specification(vp_path))
    return {str(k): str(v) for k, v in hashes.items()}


# ---- the check ------------------------------------------------------------------------------------


def _probe() -> NvidiaFacts:
    from dlsetup.probes.nvidia import probe_nvidia

    return probe_nvidia()


@dataclass
class _Findings:
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, message: str, platform: str | None = None) -> None:
        self.differences.append(Difference(kind, platform, message))


def check_conda_lock(
    lock_path: Path, req: CheckRequest, probe: Callable[[], NvidiaFacts]
) -> CheckResult:
    """Compare the conda lock ``lock_path`` with what ``dlsetup lock`` would make from its inputs now
    (the module's docstring says what is compared)."""
    _validate_options(lock_path, req)
    from dlsetup.envs.files import spec as spec_mod

    record = read_lock_record(lock_path)
    if not record.made_by_dlsetup:
        from dlsetup.envs.conda.input_hash import check_input_hash

        return check_input_hash(
            lock_path,
            req,
            sources=record.sources,
            platforms=record.platforms,
            content_hash=record.content_hash,
        )
    found = _Findings()
    target = str(record.get("target"))
    env_name = record.sources[0] if record.sources else ""
    env_file = lock_path.parent / env_name
    if not env_name.endswith((".yml", ".yaml")) or Path(env_name).name != env_name:
        raise _malformed(lock_path, f"its source {env_name!r} is not an environment file name")
    recorded_deps = _dependencies_by_platform(env_file, record.platforms)
    source, source_label = _users_source(lock_path, req, target, found)
    choice = _choose(
        req,
        record,
        found,
        recorded_variant=str(record.get("variant")),
        recorded_cuda=None if record.get("cuda", "none") == "none" else record.get("cuda"),
        recorded_gpus=_recorded_gpus(record.get("gpus")),
        gpu_source=record.get("gpu_source", "none") or "none",
        cuda_source=_cuda_source(record),
        probe=probe,
        target=target,
        source=source,
    )
    variant, cuda = choice.variant, choice.cuda
    if source is None and target != "file":
        try:
            source = spec_mod.load_environment_file(spec_mod.environment_file(target, variant))
        except InputError as exc:
            found.add("variant", f"{target} has no {variant} variant any more ({exc.message})")
        source_label = f"dlsetup's {target}-{variant}.yml" if source is not None else None
    platforms = _platforms_asked(req, record, source, found)
    compared = tuple(p for p in platforms if p in record.platforms)
    _compare_channels(req, record, found)
    _compare_python(req, recorded_deps[compared[0]] if compared else [], found)
    python = _python_asked(req, record, recorded_deps[compared[0]] if compared else [], source)
    relock: tuple[str, ...] = ()
    if choice.gpu_source.startswith("option"):  # GPUs named by hand, not read from the driver
        from dlsetup.compat.arch import fmt_cc

        for gpu in choice.gpus:
            relock += ("--gpu-arch", fmt_cc(gpu.cc))
    rendered: RenderedEnvironment | None = None
    if source is not None:
        rendered = _rerender(req, record, source, choice, target, platforms, python, found)
        if python is not None and python != _pinned(list(source.dependencies)):
            relock += ("--python-version", python)
        _compare_environment(record, rendered, compared, recorded_deps, found, source_label)
    relock += _channel_options(req, record, source, platforms)
    expected_vps = _virtual_packages(record, platforms, cuda, rendered=rendered, found=found)
    hashes, engine = _content_hashes(
        record,
        compared,
        vps=expected_vps,
        rendered=rendered,
        recorded_deps=recorded_deps,
        expected_text=rendered.text if rendered is not None else None,
        stale=bool(found.differences),
    )
    _compare_hashes(record, hashes, compared, env_name, found)
    return CheckResult(
        lock=lock_path,
        environment_file=env_file,
        source=source_label,
        target=target,
        variant=variant,
        cuda=cuda,
        platforms=platforms,
        current=not found.differences,
        differences=tuple(found.differences),
        notes=tuple(found.notes),
        content_hash={
            p: {"recorded": record.content_hash.get(p), "expected": hashes.get(p)}
            for p in platforms
        },
        hash_engine=engine,
        relock_options=relock,
    )


def _validate_options(lock_path: Path, req: CheckRequest) -> None:
    """Refuse options that do not apply to a conda lock or contradict each other (exit 2)."""
    from dlsetup.envs.files import spec as spec_mod

    for option, value in (
        ("--torch-index-url", req.torch_index_url),
        ("--index-url", req.index_url),
        ("--torch-version", req.torch_version),
    ):
        if value:
            raise InputError(
                f"{option} only applies to --backend venv; {lock_path} is a conda lock",
                fix=f"drop {option}",
            )
    for given, value in (("--cuda", req.cuda), ("--gpu-arch", ",".join(req.gpu_arch) or None)):
        if value is not None and req.variant in ("cpu", "mps"):
            raise InputError(
                f"{given} {value} only applies to --variant cuda (got --variant {req.variant})",
                fix=f"drop {given}, or use --variant cuda {given} {value}",
            )
    if req.cuda is not None:
        spec_mod.validate_cuda(req.cuda)
    if req.python_version is not None:
        spec_mod.validate_python_version(req.python_version)
    if req.all_platforms and req.platforms:
        raise InputError("--all-platforms and --platform exclude each other", fix="use one of them")


def _users_source(
    lock_path: Path, req: CheckRequest, target: str, found: _Findings
) -> tuple[EnvironmentSpec | None, str | None]:
    """The user's environment file to re-render (a lock of ``file`` named as TARGET now), and
    its label; ``(None, None)`` for a shipped target (re-rendered once the variant is known)."""
    from dlsetup.envs.files import spec as spec_mod

    if req.target is not None and req.target in spec_mod.TARGETS and req.target != target:
        found.add("target", f"locked for target {target}, asked for {req.target}")
    if target != "file":
        return None, None
    if req.target is not None and req.target not in spec_mod.TARGETS:
        return spec_mod.load_environment_file(Path(req.target)), req.target
    found.notes.append(
        "the lock was made from your own environment file, whose path it does not "
        "record: only the files beside the lock were checked; name the file to check it "
        f"too: dlsetup lock ENVIRONMENT.yml --check {lock_path}"
    )
    return None, None


def _platforms_asked(
    req: CheckRequest, record: LockRecord, source: EnvironmentSpec | None, found: _Findings
) -> tuple[str, ...]:
    """The platforms asked for now (the recorded ones unless given)."""
    from dlsetup.envs.files import spec as spec_mod

    if req.all_platforms:
        available = (
            source.platforms if source is not None and source.platforms else spec_mod.PLATFORMS
        )
        platforms = tuple(p for p in spec_mod.PLATFORMS if p in available)
    else:
        platforms = req.platforms or record.platforms
    if set(platforms) != set(record.platforms):
        found.add(
            "platforms",
            f"locked for {', '.join(record.platforms)}, asked for {', '.join(platforms)}",
        )
    return platforms


def _compare_channels(req: CheckRequest, record: LockRecord, found: _Findings) -> None:
    if not req.channels:
        return
    from dlsetup.envs.credentials import strip_auth

    asked = tuple(strip_auth(c) for c in req.channels)
    if asked != record.channels:
        found.add(
            "channels",
            f"locked from {', '.join(record.channels)}, asked for {', '.join(asked)}",
        )


def _python_asked(
    req: CheckRequest, record: LockRecord, first_deps: list[str], source: EnvironmentSpec | None
) -> str | None:
    """The ``--python-version`` to re-render with: the one given now, else the one given when the
    lock was made (``dlsetup_python_version``); None: the file's own ``python`` line, so an edited
    line shows as an environment change (never the old pin taken as asked for).

    A lock made before that was recorded: an option wrote ``python X.Y.*`` in place of the file's
    line, so a recorded line of that form that the file does not have now is read as one."""
    if req.python_version is not None:
        return req.python_version
    recorded = record.get("python_version")
    if recorded is not None:
        return None if recorded == "none" else recorded
    pinned = _pinned(first_deps)
    line = next((d for d in first_deps if _spec_key(d) == "python"), None)
    if pinned is None or line != f"python {pinned}.*":
        return None
    if source is not None and line in source.dependencies:
        return None
    return pinned


def _compare_python(req: CheckRequest, first_deps: list[str], found: _Findings) -> None:
    """``--python-version`` given now against the Python the lock was made for."""
    recorded_python = _pinned(first_deps)
    if req.python_version is not None and req.python_version != recorded_python:
        found.add(
            "python",
            f"locked for Python {recorded_python or 'unpinned'}, asked for {req.python_version}",
        )


def _rerender(
    req: CheckRequest,
    record: LockRecord,
    source: EnvironmentSpec,
    choice: VariantChoice,
    target: str,
    platforms: tuple[str, ...],
    python: str | None,
    found: _Findings,
) -> RenderedEnvironment:
    """The environment file ``dlsetup lock`` would write now (the same render, read-only)."""
    from dlsetup.envs.conda.request import (
        choose_lines,
        chosen_frameworks,
        has_cuda_package,
        plan_companions,
        solver_decides,
    )
    from dlsetup.envs.files import spec as spec_mod
    from dlsetup.envs.files.spec import CompanionPlan

    deps = source.dependencies
    variant = choice.variant
    if target == "file" and variant == "cuda" and not has_cuda_package(deps):
        found.add("variant", "locked as cuda, and the environment file has no CUDA package now")
    frameworks = chosen_frameworks(deps, req.channels or record.channels)
    lines = choose_lines(frameworks, platforms, choice, python=python or _pinned(list(deps)))
    plan = (
        CompanionPlan({}, ())
        if target == "file"
        else plan_companions(deps, platforms, variant, lines)
    )
    rendered = spec_mod.render(
        source,
        target=target,
        variant=variant,
        cuda=choice.cuda,
        python=python if python != _pinned(list(deps)) else None,
        channels=req.channels or record.channels,
        platforms=platforms,
        name=source.name if target == "file" else f"{target}-{variant}",
        lines=lines,
        gpus=choice.gpus,
        gpu_source=choice.gpu_source,
        companions=plan,
        bound_cuda=not solver_decides(deps, req.channels or record.channels),
    )
    _compare_lines(record, lines, tuple(p for p in platforms if p in record.platforms), found)
    return rendered


def _compare_environment(
    record: LockRecord,
    rendered: RenderedEnvironment,
    compared: tuple[str, ...],
    recorded_deps: dict[str, list[str]],
    found: _Findings,
    source_label: str | None = None,
) -> None:
    """The environment file's dependencies per platform, recorded against re-rendered (not
    compared once the variant or target differs: everything would). Where the file beside the
    lock no longer has the content hash the lock records, it was edited after locking: what it
    has that the source does not is said as such, never as the source's removal."""
    if any(d.kind in ("variant", "target") for d in found.differences):
        return
    changes = {}
    for p in compared:
        skip = _line_packages(record, rendered.lines, p, found)
        beside = [d for d in recorded_deps[p] if _spec_key(d) not in skip]
        expected = [d for d in rendered.dependencies_for(p) if _spec_key(d) not in skip]
        expected += pip_entries(rendered, p)
        if _dependency_changes(beside, expected):
            changes[p] = (beside, expected)
    if not changes:
        return
    env_name = record.sources[0] if record.sources else "the environment file"
    if _edited_beside(record, recorded_deps, compared):
        source = source_label or "the source"
        prefix = (
            f"{env_name} beside the lock was edited after the lock was made (conda-lock's "
            "content hash no longer matches it)"
        )
        per_platform = {
            p: _hand_edits(expected, beside, source) for p, (beside, expected) in changes.items()
        }
    else:
        prefix = "environment file changed"
        per_platform = {
            p: _dependency_changes(beside, expected) for p, (beside, expected) in changes.items()
        }
    found.differences += _per_platform_messages("environment", prefix, per_platform, compared)


def _hand_edits(source_deps: list[str], beside: list[str], source: str) -> list[str]:
    """What the file beside the lock has that ``source`` has not, said from the file's side."""
    out = []
    for change in _dependency_changes(source_deps, beside):
        if change.startswith("added "):
            out.append(f"{change}, which {source} does not list")
        elif change.startswith("removed "):
            out.append(f"{change}, which {source} lists")
        else:
            out.append(f"changed {change.replace(' -> ', ' to ')} ({source} has the first)")
    return out


def _edited_beside(
    record: LockRecord, recorded_deps: dict[str, list[str]], compared: tuple[str, ...]
) -> bool:
    """Whether the environment file beside the lock no longer has the content hash the lock
    records (recomputed with the recorded virtual packages; conda-lock's own hash where the
    fast one declines, e.g. for a ``pip:`` section)."""
    vps = {
        p: tuple(
            _parse_vps(
                record.get(f"virtual_packages_{p}") or "",
                dict(
                    item.partition("=")[::2]
                    for item in (record.get(f"virtual_package_sources_{p}") or "").split()
                ),
            )
        )
        for p in compared
    }
    fast = {p: fast_content_hash(record.channels, recorded_deps[p], p, vps[p]) for p in compared}
    if all(v is not None for v in fast.values()):
        return any(fast[p] != record.content_hash.get(p) for p in compared)
    from dlsetup.envs.conda.virtual_packages import spec_file_text
    from dlsetup.envs.files.spec import MAX_ENVIRONMENT_FILE_BYTES
    from dlsetup.reading import read_text

    text = read_text(
        record.path.parent / record.sources[0],
        what="environment file beside the lock",
        max_bytes=MAX_ENVIRONMENT_FILE_BYTES,
    )
    try:
        slow = conda_lock_content_hashes(text, spec_file_text(vps))
    except Exception:  # conda-lock's parser errors on a hand-edited file: edited, then
        return True
    return any(slow.get(p) != record.content_hash.get(p) for p in compared)


def _channel_options(
    req: CheckRequest,
    record: LockRecord,
    source: EnvironmentSpec | None,
    platforms: tuple[str, ...],
) -> tuple[str, ...]:
    """``--channel`` options that make the same request again: the channels the lock was made
    from (or those asked for now) where they are not the source's own."""
    from dlsetup.envs.credentials import strip_auth
    from dlsetup.envs.files.spec import DEFAULT_CHANNEL, written_channels

    now = tuple(strip_auth(c) for c in req.channels) or record.channels
    own = written_channels(source.channels, platforms) if source is not None else (DEFAULT_CHANNEL,)
    if now == own:
        return ()
    out: tuple[str, ...] = ()
    for channel in now:
        out += ("--channel", channel)
    return out


def _compare_hashes(
    record: LockRecord,
    hashes: Mapping[str, str | None],
    compared: tuple[str, ...],
    env_name: str,
    found: _Findings,
) -> None:
    """conda-lock's content hash: judged only when nothing else differs (then a hand edit)."""
    mismatched = [p for p in compared if hashes.get(p) != record.content_hash.get(p)]
    if mismatched and not found.differences:
        found.add(
            "content_hash",
            "conda-lock's content hash of "
            + ", ".join(mismatched)
            + f" does not match {env_name} and the virtual packages (the lock or the file was "
            "edited by hand?)",
        )


def _cuda_source(record: LockRecord) -> str | None:
    """``option:--cuda`` or ``driver:nvml``, from the ``__cuda`` entry of the sources record."""
    for key, value in record.custom.items():
        if key.startswith(f"{META}virtual_package_sources_"):
            for item in value.split():
                name, _, source = item.partition("=")
                if name == "__cuda":
                    return source
    return None


def _pinned(deps: list[str]) -> str | None:
    from dlsetup.envs.conda.request import pinned_python

    return pinned_python(tuple(deps))


def _choose(
    req: CheckRequest,
    record: LockRecord,
    found: _Findings,
    *,
    recorded_variant: str,
    recorded_cuda: str | None,
    recorded_gpus: tuple[Gpu, ...],
    gpu_source: str,
    cuda_source: str | None,
    probe: Callable[[], NvidiaFacts],
    target: str,
    source: EnvironmentSpec | None,
) -> VariantChoice:
    """The variant, CUDA version and GPUs to re-render with, and the differences they make."""
    from dlsetup.compat.lines import gpus_from_arch
    from dlsetup.envs.conda.request import has_cuda_package
    from dlsetup.envs.conda.virtual_packages import CUDA_DRIVER
    from dlsetup.envs.files import spec as spec_mod
    from dlsetup.envs.variant import (
        GPUS_NONE,
        GPUS_OPTION,
        VariantChoice,
        choose_variant,
        nvml_gpus,
    )

    if req.variant == "auto":

        def has_variant(variant: str) -> bool:
            if source is not None:
                return (
                    has_cuda_package(source.dependencies) if variant == "cuda" else variant == "cpu"
                )
            if target == "file":
                return variant in (recorded_variant, "cpu")
            return bool(spec_mod.variant_platforms(target, variant))

        chosen = choose_variant(
            "auto",
            cuda=req.cuda,
            platforms=req.platforms or record.platforms,
            has_variant=has_variant,
            probe=probe,
            gpu_arch=req.gpu_arch,
        )
        if chosen.variant != recorded_variant:
            found.add(
                "variant",
                f"locked as {recorded_variant}, auto picks {chosen.variant} here ({chosen.reason})",
            )
        elif chosen.cuda != recorded_cuda and req.cuda is None:
            found.add(
                "cuda",
                f"locked for CUDA {recorded_cuda}, this machine's driver gives {chosen.cuda}",
            )
        return chosen
    variant = req.variant or recorded_variant
    if req.variant is not None and req.variant != recorded_variant:
        found.add("variant", f"locked as {recorded_variant}, asked for --variant {req.variant}")
    if (req.cuda is not None or req.gpu_arch) and req.variant is None and variant != "cuda":
        found.add("variant", f"locked as {recorded_variant}; --cuda/--gpu-arch ask for cuda")
        variant = "cuda"
    if variant != "cuda":
        return VariantChoice(variant, None, "recorded in the lock")
    cuda = req.cuda or recorded_cuda
    gpus = gpus_from_arch(req.gpu_arch) if req.gpu_arch else recorded_gpus
    source_now = GPUS_OPTION if req.gpu_arch else gpu_source
    driver_version: str | None = None
    facts = None
    if (req.cuda is None and cuda_source == CUDA_DRIVER) or (
        not req.gpu_arch and gpu_source == CUDA_DRIVER and req.cuda is None
    ):
        facts = probe()
    if req.cuda is not None and req.cuda != recorded_cuda:
        found.add("cuda", f"locked for CUDA {recorded_cuda or 'none'}, --cuda asks for {req.cuda}")
    elif req.cuda is None and cuda_source == CUDA_DRIVER and facts is not None:
        here = facts.cuda_driver_version
        if isinstance(here, str):
            driver_version = facts.driver_version if isinstance(facts.driver_version, str) else None
            if here != recorded_cuda:
                found.add(
                    "cuda", f"locked for CUDA {recorded_cuda}, this machine's driver gives {here}"
                )
                cuda = here
        else:
            found.notes.append(
                f"the lock's CUDA {recorded_cuda} came from the driver of the machine that made "
                f"it; no driver here ({facts.status}), so it was kept"
            )
    if req.gpu_arch:
        if [g.cc for g in gpus] != [g.cc for g in recorded_gpus]:
            found.add(
                "gpus",
                f"locked for GPUs {_ccs(recorded_gpus)}, --gpu-arch asks for {_ccs(gpus)}",
            )
    elif gpu_source == CUDA_DRIVER and req.cuda is None and facts is not None:
        here_gpus = nvml_gpus(facts)
        if here_gpus and [g.cc for g in here_gpus] != [g.cc for g in recorded_gpus]:
            found.add(
                "gpus",
                f"locked for GPUs {_ccs(recorded_gpus)}, this machine's are {_ccs(here_gpus)}",
            )
            gpus = here_gpus
    if cuda is None:
        raise _malformed(record.path, "a cuda lock without a CUDA version (dlsetup_cuda)")
    return VariantChoice(
        "cuda",
        cuda,
        "recorded in the lock",
        gpus,
        source_now if gpus else GPUS_NONE,
        driver_version,
    )


def _compare_lines(
    record: LockRecord,
    lines: Mapping[str, LineChoice],
    platforms: tuple[str, ...],
    found: _Findings,
) -> None:
    for platform in platforms:
        before = record.get(f"cuda_line_{platform}")
        after = lines.get(platform)
        now = after.line if after is not None else None
        if before != now:
            why = f" ({after.reason})" if after is not None else ""
            found.add(
                "cuda_line",
                f"CUDA line for {platform}: locked {before or 'none'}, now {now or 'none'}{why}",
                platform,
            )


def _line_packages(
    record: LockRecord, lines: Mapping[str, LineChoice], platform: str, found: _Findings
) -> set[str]:
    """Packages whose specs a changed CUDA line rewrites (reported as the line, not the file)."""
    if not any(
        d.kind in ("cuda_line", "cuda") and d.platform in (platform, None)
        for d in found.differences
    ):
        return set()
    before = (record.get(f"cuda_line_specs_{platform}") or "").split(" ")
    names = {_spec_key(s) for s in before if s and s[0].isalpha()}
    after = lines.get(platform)
    if after is not None:
        names |= {_spec_key(s) for s in after.specs}
        names |= {c.package for c in after.companions}  # torchvision follows pytorch's line
    return names - {""}


def _virtual_packages(
    record: LockRecord,
    platforms: tuple[str, ...],
    cuda: str | None,
    *,
    rendered: RenderedEnvironment | None,
    found: _Findings,
) -> dict[str, tuple[VirtualPackage, ...]]:
    """Per platform, the virtual packages ``dlsetup lock`` would solve with now: the recorded
    detected (and unchanged override) values, recomputed floors, the CUDA version asked for."""
    from dlsetup.envs.conda.virtual_packages import (
        CUDA_DRIVER,
        CUDA_OPTION,
        DETECTED,
        OVERRIDE_VARS,
        virtual_packages,
    )

    result: dict[str, tuple[VirtualPackage, ...]] = {}
    cuda_source = CUDA_DRIVER if _cuda_source(record) == CUDA_DRIVER else CUDA_OPTION
    for platform in platforms:
        recorded_text = record.get(f"virtual_packages_{platform}")
        sources = dict(
            item.partition("=")[::2]
            for item in (record.get(f"virtual_package_sources_{platform}") or "").split()
        )
        recorded = _parse_vps(recorded_text or "", sources)
        glibc = rendered.lines[platform].glibc if rendered and platform in rendered.lines else None
        fresh = {
            p.name: p
            for p in virtual_packages(platform, cuda, cuda_source=cuda_source, glibc_needed=glibc)
        }
        expected: list[VirtualPackage] = []
        for p in recorded:
            var = OVERRIDE_VARS.get(p.name)
            if p.name == "__cuda":
                continue
            if p.source == DETECTED or (
                p.source.startswith("env:") and os.environ.get(var or "", p.version) == p.version
            ):
                expected.append(p)
            elif p.name in fresh:
                expected.append(fresh[p.name])
        known = {p.name for p in expected}
        expected += [p for n, p in fresh.items() if n not in known and n != "__cuda"]
        if "__cuda" in fresh:
            expected.append(fresh["__cuda"])
        result[platform] = tuple(expected)
        if recorded_text is None:
            continue
        now = " ".join(str(p) for p in expected)
        if now != recorded_text and platform in record.platforms:
            before_map = {p.name: str(p) for p in recorded}
            after_map = {p.name: str(p) for p in expected}
            changes = [
                f"{before_map.get(n, n + ' (none)')} -> {after_map.get(n, 'none')}"
                for n in dict.fromkeys([*before_map, *after_map])
                if before_map.get(n) != after_map.get(n) and n != "__cuda"
            ]
            if changes:
                found.add(
                    "virtual_packages",
                    f"virtual packages for {platform} changed: {'; '.join(changes)}",
                    platform,
                )
    return result


def _parse_vps(text: str, sources: dict[str, str]) -> list[VirtualPackage]:
    """``__unix=0 __glibc=2.28 __archspec=1=x86_64`` (the metadata's form) as records."""
    from dlsetup.envs.conda.virtual_packages import FLOOR, VirtualPackage

    out = []
    for item in text.split():
        name, version, build = [*item.split("="), "0", "0"][:3]
        out.append(VirtualPackage(name, version, build, sources.get(name, FLOOR)))
    return out


def _content_hashes(
    record: LockRecord,
    platforms: tuple[str, ...],
    *,
    vps: dict[str, tuple[VirtualPackage, ...]],
    rendered: RenderedEnvironment | None,
    recorded_deps: dict[str, list[str]],
    expected_text: str | None,
    stale: bool,
) -> tuple[dict[str, str], str]:
    """The content hash of each platform for the expected inputs (the files beside the lock when
    the source could not be re-rendered): fast where it reproduces the recorded hash, else
    conda-lock's own."""
    channels = rendered.spec.channels if rendered is not None else record.channels
    fast: dict[str, str] = {}
    for p in platforms:
        deps = list(rendered.dependencies_for(p)) if rendered is not None else recorded_deps[p]
        value = fast_content_hash(channels, deps, p, vps[p])
        if value is not None:
            fast[p] = value
    if stale or all(fast.get(p) == record.content_hash.get(p) for p in platforms):
        return fast, "dlsetup"  # stale already: conda-lock's hash would only cost a second
    from dlsetup.envs.conda.virtual_packages import spec_file_text

    text = expected_text
    if text is None:
        from dlsetup.envs.files.spec import MAX_ENVIRONMENT_FILE_BYTES
        from dlsetup.reading import read_text

        text = read_text(
            record.path.parent / record.sources[0],
            what="environment file beside the lock",
            max_bytes=MAX_ENVIRONMENT_FILE_BYTES,
        )
    try:
        slow = conda_lock_content_hashes(text, spec_file_text(vps))
    except Exception as exc:  # conda-lock's parser errors on a hand-edited file
        raise _malformed(record.path, f"conda-lock cannot read its inputs: {exc}") from exc
    return {p: slow.get(p, "") for p in platforms}, "conda-lock"
