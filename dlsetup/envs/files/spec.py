"""Targets, variants and platforms, the shipped environment files, and rendering them.

The source environment files live in ``dlsetup/data/environments/<target>-<variant>.yml`` (the one
source of truth; ``environments/`` in the repository holds an identical copy checked by a test).
Each is a plain conda ``environment.yml`` with conda-forge as its channel, a ``platforms:`` list
(where conda-forge builds that variant) and dependencies. Variants are expressed with build-string
match specs on the real packages, which conda, mamba, micromamba, conda-lock and rattler all read:

* CPU: ``pytorch * cpu_*`` / ``tensorflow * cpu_*``.
* CUDA: ``pytorch * cuda*`` / ``tensorflow * cuda*`` plus ``cuda-version >=12`` (conda-forge has
  no CUDA 11 builds of either any more). Rendering for a driver replaces it with an upper bound
  (:func:`cuda_version_spec`: ``cuda-version <13`` for CUDA 12.x) and the lock adds the virtual
  package ``__cuda`` with the driver's CUDA version; conda-forge's own constraints
  (``cuda-version`` constrains ``__cuda >=MAJOR``) do the rest.
* MPS: conda-forge's osx-arm64 PyTorch builds are CPU builds with the Metal backend, so the mps
  file is the CPU spec restricted to osx-arm64.
* PyTorch's companions follow its variant: ``torchvision * cpu_*`` / ``torchvision * cuda*``, and
  a lock pins ``torchvision`` to PyTorch's CUDA line (``LineChoice.companions``). One conda-forge
  does not build for a platform is left out there (``leave_out``, written with selectors) and
  said so (``companion_notes``); torchaudio, built for pytorch 2.10 only, is in no shipped file.

Rendering replaces the ``python`` and ``cuda-version`` lines and the channels when asked, and keeps
everything else. A file that is not valid YAML, or not shaped like an environment file, raises
:class:`dlsetup.errors.InputError` naming the file and the line; so does one larger than
:data:`MAX_ENVIRONMENT_FILE_BYTES`, a binary or non-UTF-8 file, an entry with a control character
(a newline would add lines to the rendered file) and a ``name:`` that is not a valid environment
name (:mod:`dlsetup.envs.files.names`: the name becomes the output files' names, so ``../x`` or ``/x``
would write outside ``--output``). Everything is checked when the file is loaded, before anything
is written.

Environment files mean what conda and conda-lock make of them:

* ``nodefaults`` is not a channel: it is removed (conda: "do not add ``defaults``"; dlsetup never
  adds it anyway). ``defaults`` is conda's built-in multichannel, expanded when rendering to
  :data:`DEFAULTS_CHANNELS` (conda's ``DEFAULT_CHANNELS_UNIX``: repo.anaconda.com ``pkgs/main`` and
  ``pkgs/r``; ``pkgs/msys2`` too when win-64 is locked, as conda's ``DEFAULT_CHANNELS_WIN``), never a
  conda.anaconda.org URL. Other names (``conda-forge``, ``pytorch``) and URLs are kept as written;
  the solver puts a name under the channel alias ``https://conda.anaconda.org``.
* Selectors (``- numpy  # [linux]``, ``# [osx and arm64]``) are read with conda-lock's pattern and
  evaluated per platform (:mod:`dlsetup.envs.files.selectors`); one that names no platform is refused
  with its line number. The rendered file writes each selected line per platform
  (``# [linux64]``), which conda-lock reads the same way.
* A ``pip:`` section is kept (:class:`PipRequirement`, locked with uv by
  :mod:`dlsetup.envs.pypi.resolve`). Its ``--index-url``/``-i`` and ``--extra-index-url`` lines are
  honoured; the rendered file names them as conda-lock does, ``pip-repositories:`` (with
  ``allow-pypi-requests: false`` for ``--index-url``), because conda-lock's parser reads no option
  lines in a ``pip:`` section; such a file is read back the same way. Other pip options (``-e``,
  ``-r``, ``--find-links``) and URL/VCS requirements are refused with their line number.

Channel credentials never reach the rendered text: its ``channels:`` are :func:`strip_auth`'s
(``${VAR}`` placeholders kept, literal user-info removed); the channels as given travel beside it,
in :attr:`RenderedEnvironment.solve_channels`, for the solve only.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlsetup.envs.credentials import strip_auth
from dlsetup.envs.files.names import NAME_RULE, is_valid_env_name
from dlsetup.envs.files.pip_section import PipRequirement, pip_repositories, pip_section
from dlsetup.envs.files.selectors import evaluate, selector_of
from dlsetup.errors import InputError
from dlsetup.platforms import PLATFORM_INFO, PLATFORM_NAMES

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from rattler import MatchSpec

    from dlsetup.compat.lines import Gpu, LineChoice

TARGETS: tuple[str, ...] = ("pytorch", "tensorflow", "both")
VARIANTS: tuple[str, ...] = ("cpu", "cuda", "mps")
#: every platform dlsetup locks for (:mod:`dlsetup.platforms`)
PLATFORMS: tuple[str, ...] = PLATFORM_NAMES
DEFAULT_CHANNEL = "conda-forge"
DEFAULT_PYTHON = "3.12"

_PYTHON_RE = re.compile(r"^3\.\d{1,2}$")
_CUDA_RE = re.compile(r"^\d{1,2}\.\d{1,2}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
#: environment files larger than this are refused unread (the shipped ones are under 1 KiB)
MAX_ENVIRONMENT_FILE_BYTES = 1024 * 1024
#: conda's ``defaults`` multichannel (conda's ``DEFAULT_CHANNELS_UNIX``; see
#: https://docs.conda.io/projects/conda/en/latest/user-guide/concepts/channels.html and
#: https://www.anaconda.com/docs/tools/working-with-conda/reference/default-channels)
DEFAULTS_CHANNELS: tuple[str, ...] = (
    "https://repo.anaconda.com/pkgs/main",
    "https://repo.anaconda.com/pkgs/r",
)
#: added to ``defaults`` where Windows is locked (conda's ``DEFAULT_CHANNELS_WIN``)
DEFAULTS_WINDOWS_CHANNEL = "https://repo.anaconda.com/pkgs/msys2"


@dataclass(frozen=True)
class EnvironmentSpec:
    """A parsed environment file.

    Attributes:
        path: where it was read from (for messages).
        name: the ``name:`` field.
        channels: channel names or URLs, in priority order.
        platforms: the ``platforms:`` list (empty: not stated).
        dependencies: conda match specs, as written (every platform's).
        header: the leading comment lines (kept when rendering).
        dependency_platforms: per dependency, the platforms its selector is true on (None:
            every platform); empty: no selectors at all.
        pip: the ``pip:`` section's requirements.
        pip_index_url: ``--index-url`` of the ``pip:`` section as written (credentials and
            ``${VAR}`` included: for the resolver only), or None (PyPI).
        pip_extra_index_urls: its ``--extra-index-url`` values, as written.
    """

    path: str
    name: str
    channels: tuple[str, ...]
    platforms: tuple[str, ...]
    dependencies: tuple[str, ...]
    header: tuple[str, ...] = field(default=())
    dependency_platforms: tuple[frozenset[str] | None, ...] = ()
    pip: tuple[PipRequirement, ...] = ()
    pip_index_url: str | None = field(default=None, repr=False)
    pip_extra_index_urls: tuple[str, ...] = field(default=(), repr=False)

    def dependencies_on(self, platform: str) -> tuple[str, ...]:
        """The conda dependencies whose selector is true on ``platform``."""
        if not self.dependency_platforms:
            return self.dependencies
        return tuple(
            d
            for d, where in zip(self.dependencies, self.dependency_platforms, strict=True)
            if where is None or platform in where
        )

    def pip_on(self, platform: str) -> tuple[PipRequirement, ...]:
        """The ``pip:`` requirements whose selector is true on ``platform``."""
        return tuple(r for r in self.pip if r.platforms is None or platform in r.platforms)


@dataclass(frozen=True)
class RenderedEnvironment:
    """An environment file rendered for one request.

    Attributes:
        spec: the rendered content.
        text: the YAML text to write (``NAME.environment.yml``).
        target: ``pytorch`` | ``tensorflow`` | ``both`` | ``file``.
        variant: ``cpu`` | ``cuda`` | ``mps``.
        cuda: the CUDA version (``"12.4"``) the lock is solved for; ``None`` for cpu and mps.
        python: the Python ``major.minor`` pinned, or ``None`` when the file pins none.
        solve_channels: the channels as given, credentials and ``${VAR}`` placeholders included
            (``spec.channels`` has them stripped); for the solve only, never written or shown.
            Empty: ``spec.channels``.
        platform_dependencies: per platform, the dependencies with that platform's CUDA line
            pinned (written with conda-lock's platform selectors where platforms differ); empty
            when no line was chosen.
        lines: per platform, the CUDA line chosen (:func:`dlsetup.compat.lines.choose_cuda_line`).
        gpus: the GPUs the line was chosen for (NVML's, or ``--gpu-arch``).
        gpu_source: where ``gpus`` came from: ``driver:nvml``, ``option:--gpu-arch`` or ``none``.
        companion_notes: what became of PyTorch's companions (torchvision, torchaudio): which
            build each follows, and each one left out with why (written to the lock's header).
        python_option: the ``--python-version`` that replaced the file's ``python`` line (None:
            the file's own line was kept), recorded in the lock so ``lock --check`` tells a
            changed file from an option.
    """

    spec: EnvironmentSpec
    text: str
    target: str
    variant: str
    cuda: str | None
    python: str | None
    solve_channels: tuple[str, ...] = field(default=(), repr=False)
    platform_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    lines: Mapping[str, LineChoice] = field(default_factory=dict)
    gpus: tuple[Gpu, ...] = ()
    gpu_source: str = "none"
    companion_notes: tuple[str, ...] = ()
    python_option: str | None = None

    def dependencies_for(self, platform: str) -> tuple[str, ...]:
        """The match specs to solve ``platform`` with (the CUDA line's pins and selectors differ
        per platform)."""
        return self.platform_dependencies.get(platform, self.spec.dependencies_on(platform))

    def pip_for(self, platform: str) -> tuple[PipRequirement, ...]:
        """The ``pip:`` requirements of ``platform`` (empty: no PyPI part there)."""
        return self.spec.pip_on(platform)


@functools.lru_cache(maxsize=4096)
def match_spec(spec: str) -> MatchSpec | None:
    """``spec`` read by rattler's ``MatchSpec`` (what pixi reads), or None when it is not a conda
    match spec with a package name."""
    from rattler import MatchSpec
    from rattler.exceptions import InvalidMatchSpecError

    try:
        parsed = MatchSpec(spec)
    except InvalidMatchSpecError:
        return None
    return parsed if parsed.name is not None else None


def spec_name(spec: str) -> str:
    """The package name of a conda match spec (``"pytorch * cuda*"`` -> ``"pytorch"``; ``""`` for
    a string that is no match spec), read by :func:`match_spec`."""
    parsed = match_spec(spec)
    return parsed.name.normalized if parsed is not None and parsed.name is not None else ""


def spec_version(spec: str) -> str | None:
    """The version constraint of a conda match spec as rattler normalizes it (``python=3.9`` ->
    ``3.9.*``, ``python >= 3.8`` -> ``>=3.8``); None when it has none."""
    parsed = match_spec(spec)
    return str(parsed.version) if parsed is not None and parsed.version is not None else None


def python_pin(spec: str) -> str | None:
    """The Python ``X.Y`` an exact pin of a ``python`` spec names (``python=3.9``, ``python==3.9``,
    ``python 3.12.*``, ``python 3.11.4``); None for a range (``python >= 3.8``, ``>=3.12,<3.13``,
    ``3.9|3.10``), a bare major (``python=3``) or no version: a range constrains, it pins nothing."""
    version = spec_version(spec)
    if version is None or any(c in version for c in ",|<>!~"):
        return None
    exact = version.removeprefix("==").removesuffix(".*")
    if not exact or "*" in exact:
        return None
    from rattler import Version
    from rattler.exceptions import InvalidVersionError

    try:
        parsed = Version(exact)
    except InvalidVersionError:
        return None
    pair = parsed.as_major_minor() if parsed.segment_count >= 2 else None
    return f"{pair[0]}.{pair[1]}" if pair is not None else None


def python_allows(spec: str) -> Callable[[str], bool] | None:
    """For a ``python`` spec with a version, whether it allows some release of a Python ``X.Y``
    (``python >=3.12.1`` allows 3.12: 3.12.5 is one); None without a version constraint."""
    parsed = match_spec(spec)
    if parsed is None or parsed.version is None:
        return None
    from rattler import Version, VersionSpec

    constraint = VersionSpec(str(parsed.version))

    def allows(minor: str) -> bool:
        return any(constraint.matches(Version(f"{minor}{tail}")) for tail in ("", ".0", ".999"))

    return allows


def environment_file(target: str, variant: str) -> Path:
    """The shipped environment file for ``target`` and ``variant``.

    Raises:
        InputError: the target or variant is unknown, or this target has no such variant.
    """
    if target not in TARGETS:
        raise InputError(
            f"unknown target {target!r}; valid targets: {', '.join(TARGETS)}",
            fix="pick one of them, or pass the path of an environment.yml",
        )
    if variant not in VARIANTS:
        raise InputError(
            f"unknown variant {variant!r}; valid variants: {', '.join(VARIANTS)}",
            fix="use --variant cpu, cuda or mps (or auto)",
        )
    data = resources.files("dlsetup").joinpath("data", "environments", f"{target}-{variant}.yml")
    if not data.is_file():
        have = [v for v in VARIANTS if _shipped(target, v)]
        raise InputError(
            f"target {target!r} has no {variant} variant; it has: {', '.join(have)}",
            fix=f"use --variant {have[0]}" if have else None,
        )
    return Path(str(data))


def _shipped(target: str, variant: str) -> bool:
    return (
        resources.files("dlsetup")
        .joinpath("data", "environments", f"{target}-{variant}.yml")
        .is_file()
    )


def variant_platforms(target: str, variant: str) -> tuple[str, ...]:
    """Platforms where ``target`` exists in ``variant`` (from the shipped file's ``platforms:``)."""
    if not _shipped(target, variant):
        return ()
    return load_environment_file(environment_file(target, variant)).platforms


def _line_of(node: Any) -> int:
    return int(node.start_mark.line) + 1


def load_environment_file(path: Path) -> EnvironmentSpec:
    """Parse an environment file, naming the file and line of anything malformed.

    Args:
        path: an ``environment.yml``.

    Raises:
        InputError: unreadable file, invalid YAML, or a field of the wrong shape.
    """
    text = _read_text(path)
    reader = _FileReader(path, text, _compose(text, path))
    name = _name(reader.fields.get("name"), path, reader.bad)
    channels = reader.channels()
    platforms = reader.platforms()
    deps_node, dependencies, dep_platforms, pip_nodes = reader.conda_dependencies()
    pip, index_url, extra = reader.pip_section(pip_nodes)
    if not dependencies and not pip:
        raise reader.bad(deps_node, "'dependencies:' names no package (its pip: section is empty)")
    index_url, extra = pip_repositories(reader.fields, index_url, extra, reader.bad)
    header = tuple(line for line in _leading_comments(text))
    return EnvironmentSpec(
        str(path),
        name,
        channels,
        platforms,
        tuple(dependencies),
        header,
        dependency_platforms=tuple(dep_platforms)
        if any(w is not None for w in dep_platforms)
        else (),
        pip=pip,
        pip_index_url=index_url,
        pip_extra_index_urls=extra,
    )


def _compose(text: str, path: Path) -> Any:
    """The YAML node tree of ``text``: a mapping node, else the file and line of the problem."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        raise InputError(
            f"malformed environment file {where}: {exc.problem or exc.context}",
            fix="fix the YAML at that line (indentation, a missing '- ' or ':')",
        ) from exc
    except yaml.YAMLError as exc:  # the reader's errors (a character YAML does not allow)
        raise InputError(
            f"malformed environment file {path}: {exc}",
            fix="an environment file is YAML text: name:, channels: and dependencies:",
        ) from exc
    except RecursionError as exc:
        raise InputError(
            f"malformed environment file {path}: nested too deeply to be an environment file",
            fix="an environment file has name:, channels: and dependencies: (lists of strings)",
        ) from exc
    if not isinstance(root, yaml.MappingNode):
        if root is None:
            raise InputError(
                f"malformed environment file {path}, line 1: the file is empty",
                fix="write name:, channels: and dependencies: into it, or start from a shipped "
                "one: dlsetup lock pytorch --variant cpu writes pytorch-cpu.environment.yml",
            )
        raise _bad(path, root, "expected a mapping with name:, channels: and dependencies:")
    return root


def _bad(path: Path, node: Any, what: str) -> InputError:
    """The error for a malformed ``node`` of the environment file at ``path`` (file and line)."""
    return InputError(
        f"malformed environment file {path}, line {_line_of(node)}: {what}",
        fix="an environment file has name:, channels: (a list), dependencies: (a list of "
        "match specs like 'numpy' or 'pytorch * cpu_*') and optionally platforms:",
    )


class _FileReader:
    """The top-level fields of one environment file's YAML nodes, read and checked field by field;
    every refusal names the file and the line (:meth:`bad`)."""

    def __init__(self, path: Path, text: str, root: Any) -> None:
        self.path = path
        self.root = root
        self.raw_lines = text.splitlines()
        self.fields: dict[str, Any] = {}
        for key, value in root.value:
            self.fields[str(key.value)] = value

    def bad(self, node: Any, what: str) -> InputError:
        """The error for a malformed ``node`` (the file's error factory, passed to
        :mod:`dlsetup.envs.files.pip_section` too)."""
        return _bad(self.path, node, what)

    def selected(self, node: Any, *, allowed: bool) -> frozenset[str] | None:
        """The platforms the selector on ``node``'s line is true on (None: no selector)."""
        line = (
            self.raw_lines[node.start_mark.line]
            if node.start_mark.line < len(self.raw_lines)
            else ""
        )
        expression = selector_of(line)
        if expression is None:
            return None
        if not allowed:
            error = self.bad(
                node,
                f"a selector [{expression}] on this line: only dependencies (and pip: "
                "requirements) take platform selectors",
            )
            error.fix = (
                "remove the selector: channels, platforms and the '- pip:' line apply to every "
                "platform (put selectors on the dependencies instead)"
            )
            raise error
        return evaluate(expression, where=f"{self.path}, line {_line_of(node)}").platforms

    def string_item(self, item: Any, key: str) -> str:
        """One list entry of ``key:``: a non-empty string without control characters."""
        import yaml

        if not isinstance(item, yaml.ScalarNode) or not str(item.value).strip():
            raise self.bad(item, f"each '{key}:' entry must be a non-empty string")
        if _CONTROL_RE.search(str(item.value)):
            raise self.bad(item, f"{item.value!r} contains a control character (a line break?)")
        return str(item.value).strip()

    def string_items(self, node: Any, key: str) -> list[tuple[str, Any]]:
        return [(self.string_item(item, key), item) for item in node.value]

    def string_list(self, key: str, *, required: bool) -> tuple[str, ...]:
        """The top-level list ``key:`` of strings (no selectors on its lines)."""
        import yaml

        node = self.fields.get(key)
        if node is None:
            if required:
                raise self.bad(self.root, f"'{key}:' is missing")
            return ()
        if not isinstance(node, yaml.SequenceNode):
            raise self.bad(node, f"'{key}:' must be a list")
        items = self.string_items(node, key)
        for _, item in items:
            self.selected(item, allowed=False)
        return tuple(value for value, _ in items)

    def channels(self) -> tuple[str, ...]:
        """``channels:`` without ``nodefaults`` (default: conda-forge)."""
        # nodefaults is not a channel: it tells conda not to add defaults (dlsetup never does)
        channels = tuple(
            c for c in self.string_list("channels", required=False) if c != "nodefaults"
        )
        return channels or (DEFAULT_CHANNEL,)

    def platforms(self) -> tuple[str, ...]:
        """``platforms:``, each one a platform dlsetup knows."""
        platforms = self.string_list("platforms", required=False)
        nodes = getattr(self.fields.get("platforms"), "value", [])
        for item, node in zip(platforms, nodes, strict=False):
            if item not in PLATFORMS:
                raise self.bad(
                    node, f"unknown platform {item!r}; valid platforms: {', '.join(PLATFORMS)}"
                )
        return platforms

    def conda_dependencies(
        self,
    ) -> tuple[Any, list[str], list[frozenset[str] | None], list[Any]]:
        """``dependencies:``: its node, its conda match specs, the platforms each one's selector
        is true on, and the nodes of its ``pip:`` sections (at most one)."""
        import yaml

        deps_node = self.fields.get("dependencies")
        if deps_node is None:
            raise self.bad(self.root, "'dependencies:' is missing")
        if not isinstance(deps_node, yaml.SequenceNode):
            raise self.bad(deps_node, "'dependencies:' must be a list")
        dependencies: list[str] = []
        dep_platforms: list[frozenset[str] | None] = []
        pip_nodes: list[Any] = []
        for item in deps_node.value:
            if isinstance(item, yaml.MappingNode):
                keys = [str(k.value) for k, _ in item.value]
                if keys != ["pip"]:
                    raise self.bad(
                        item,
                        f"a mapping {{{', '.join(keys)}}} in dependencies: the only one conda "
                        "knows is a 'pip:' section (- pip: [requirement, ...])",
                    )
                self.selected(item, allowed=False)
                pip_nodes.append(item.value[0][1])
                continue
            value = self.string_item(item, "dependencies")
            if not spec_name(value):
                raise self.bad(item, f"{value!r} is not a conda match spec")
            dependencies.append(value)
            dep_platforms.append(self.selected(item, allowed=True))
        if not dependencies and not pip_nodes:
            raise self.bad(deps_node, "'dependencies:' is empty")
        if len(pip_nodes) > 1:
            raise self.bad(
                pip_nodes[1], "a second 'pip:' section; put all PyPI requirements in one"
            )
        return deps_node, dependencies, dep_platforms, pip_nodes

    def pip_section(
        self, pip_nodes: list[Any]
    ) -> tuple[tuple[PipRequirement, ...], str | None, tuple[str, ...]]:
        """The ``pip:`` section's requirements, ``--index-url`` and ``--extra-index-url``s
        (:func:`dlsetup.envs.files.pip_section.pip_section`); none without a section."""
        import yaml

        if not pip_nodes:
            return (), None, ()
        node = pip_nodes[0]
        if not isinstance(node, yaml.SequenceNode):
            raise self.bad(node, "'pip:' must be a list of PyPI requirements")
        return pip_section(
            [
                (value, item, self.selected(item, allowed=True))
                for value, item in self.string_items(node, "pip")
            ],
            self.bad,
        )


def _read_text(path: Path) -> str:
    """The file's text, read by :mod:`dlsetup.reading`: a regular file (a FIFO or device is
    refused unopened), at most :data:`MAX_ENVIRONMENT_FILE_BYTES`, not binary, UTF-8, and nested
    no deeper than an environment file ever is."""
    from dlsetup.reading import decode, read_bytes, require_depth

    what = "environment file"
    data = read_bytes(
        path,
        what=what,
        max_bytes=MAX_ENVIRONMENT_FILE_BYTES,
        fix="pass the environment .yml (name:, channels:, dependencies:), not a lock, log "
        "or archive",
    )
    if b"\0" in data:
        raise InputError(
            f"environment file {path} is a binary file (it contains NUL bytes), not YAML text",
            fix="pass the environment .yml (name:, channels:, dependencies:)",
        )
    text = decode(
        data,
        source=str(path),
        what=what,
        fix="save it as UTF-8 (most editors offer 'UTF-8' when saving)",
    )
    require_depth(
        text,
        syntax="yaml",
        source=str(path),
        what=what,
        fix="an environment file has name:, channels: and dependencies: (lists of strings)",
    )
    return text


def _name(node: Any, path: Path, bad: Any) -> str:
    """The ``name:`` (the file's stem when there is none), a valid environment name."""
    import yaml

    if node is None or (isinstance(node, yaml.ScalarNode) and node.value == ""):
        if is_valid_env_name(path.stem):
            return path.stem
        raise InputError(
            f"environment file {path} has no name:, and its file name {path.stem!r} is not a "
            f"valid environment name: {NAME_RULE}",
            fix="add a line such as 'name: my-env' to the file",
        )
    if not isinstance(node, yaml.ScalarNode):
        raise bad(node, "'name:' must be a string")
    name = str(node.value)
    if not is_valid_env_name(name):
        raise InputError(
            f"malformed environment file {path}, line {_line_of(node)}: invalid environment name "
            f"{name!r} (it names the output files, so it must be a plain file name): {NAME_RULE}",
            fix="change the line to something like 'name: my-env'",
        )
    return name


def _leading_comments(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def validate_python_version(python: str) -> str:
    """Check a ``--python-version`` value (``3.12``)."""
    if not _PYTHON_RE.match(python):
        raise InputError(
            f"invalid --python-version {python!r}: expected MAJOR.MINOR such as 3.12",
            fix="--python-version 3.12",
        )
    return python


def known_cuda_range() -> tuple[tuple[int, int], tuple[int, int]]:
    """The oldest and newest CUDA versions of the knowledge base's toolkit table (``compat.yaml``)."""
    from dlsetup.compat.cuda import parse_cuda, toolkit_rows

    versions = sorted(parse_cuda(row[0]) for row in toolkit_rows())
    return versions[0], versions[-1]


def validate_cuda(cuda: str) -> str:
    """Check a ``--cuda`` value (``12.4``) against the CUDA versions dlsetup knows.

    Any minor of the newest known major is accepted (NVIDIA ships 13.x minors faster than the
    table grows); an older major must not exceed its last known minor, and a major outside the
    table (``99.9``, or ``10.2`` from the old ``cudatoolkit`` recipes) is refused.
    """
    fix = "use the 'CUDA Version' that nvidia-smi or dlsetup doctor shows, e.g. --cuda 12.4"
    if not _CUDA_RE.match(cuda):
        raise InputError(f"invalid --cuda {cuda!r}: expected MAJOR.MINOR such as 12.4", fix=fix)
    from dlsetup.compat.cuda import parse_cuda, toolkit_rows

    (lo_major, lo_minor), (hi_major, hi_minor) = known_cuda_range()
    major, minor = parse_cuda(cuda)
    last_minor = max(
        (parse_cuda(row[0])[1] for row in toolkit_rows() if parse_cuda(row[0])[0] == major),
        default=-1,
    )
    if not lo_major <= major <= hi_major or (major < hi_major and minor > last_minor):
        raise InputError(
            f"unknown CUDA version --cuda {cuda}: dlsetup knows CUDA {lo_major}.{lo_minor} to "
            f"{hi_major}.{hi_minor} (and later {hi_major}.x releases)",
            fix=f"{fix}; a CUDA release newer than these needs a newer dlsetup",
        )
    return cuda


def cuda_version_spec(cuda: str) -> str:
    """The ``cuda-version`` line for a driver that supports CUDA ``cuda``: ``12.4`` -> ``<13``.

    Any CUDA build of the driver's major family or older runs on it (NVIDIA's minor-version and
    backward compatibility), so only an upper bound is pinned; conda-forge's ``cuda-version``
    packages constrain ``__cuda >=MAJOR`` and the solver picks the newest build that fits.
    A CUDA 13 driver thus still gets TensorFlow's CUDA 12.8 build where no 13.x build exists.
    """
    return f"cuda-version <{int(cuda.split('.', maxsplit=1)[0]) + 1}"


@dataclass(frozen=True)
class CompanionPlan:
    """What becomes of PyTorch's companions (torchvision, torchaudio) in a shipped environment
    (:func:`dlsetup.envs.conda.request.plan_companions` makes it).

    Attributes:
        leave_out: per platform, the companions listed in the file that conda-forge builds for
            no build of PyTorch's variant there (left out of that platform, with a selector).
        notes: sentences for the lock's header and reason: which build each companion follows,
            and each one left out, with why.
    """

    leave_out: Mapping[str, frozenset[str]]
    notes: tuple[str, ...]


def render(
    spec: EnvironmentSpec,
    *,
    target: str,
    variant: str,
    cuda: str | None,
    python: str | None,
    channels: tuple[str, ...] = (),
    platforms: tuple[str, ...] = (),
    name: str | None = None,
    lines: Mapping[str, LineChoice] | None = None,
    gpus: tuple[Gpu, ...] = (),
    gpu_source: str = "none",
    companions: CompanionPlan | None = None,
    bound_cuda: bool = True,
) -> RenderedEnvironment:
    """Render ``spec`` for one request: pin Python and the CUDA family, set channels, platforms.

    Args:
        spec: the parsed source file.
        target: the target name (``file`` for a user's own environment file).
        variant: ``cpu``, ``cuda`` or ``mps``.
        cuda: the CUDA ``MAJOR.MINOR`` to solve for (cuda variant only).
        python: ``MAJOR.MINOR`` to pin, or ``None`` to keep the file's pin.
        channels: channels replacing the file's (empty: keep them).
        platforms: the platforms being locked (written to ``platforms:``).
        name: the environment name written to ``name:``.
        lines: per platform, the CUDA line chosen for it: its specs replace the framework and
            ``cuda-version`` lines (and add ``arm-variant`` on linux-aarch64) instead of
            :func:`cuda_version_spec`.
        gpus: the GPUs the lines were chosen for, recorded in the result.
        gpu_source: where ``gpus`` came from.
        companions: PyTorch's companions: per platform, packages to leave out there (one
            conda-forge does not build for that platform and variant; written with conda-lock's
            platform selectors), and sentences on them, written as comments and kept.
        bound_cuda: bound (or add) conda-forge's ``cuda-version`` line for ``cuda``; False where
            the user chose the framework's build (another channel, a pinned release: the
            solver and ``__cuda`` decide, :func:`dlsetup.envs.conda.request.chosen_frameworks`).
    """
    lines = dict(lines or {})
    leave_out = companions.leave_out if companions is not None else None
    companion_notes = companions.notes if companions is not None else ()
    deps, where, pinned_python = _pinned_dependencies(
        spec, variant=variant, cuda=cuda if bound_cuda else None, python=python, lines=lines
    )
    every = platforms or spec.platforms or PLATFORMS
    per_platform = _per_platform_dependencies(
        deps, where, lines, every=every, leave_out=leave_out, stated=platforms or spec.platforms
    )
    solve_channels = _solve_channels(channels or spec.channels, every)
    new = EnvironmentSpec(
        path=spec.path,
        name=name or spec.name,
        channels=tuple(strip_auth(c) for c in solve_channels),
        platforms=platforms or spec.platforms,
        dependencies=next(iter(per_platform.values()), tuple(deps)),
        header=spec.header,
        pip=tuple(
            replace(
                r, platforms=frozenset(p for p in every if r.platforms is None or p in r.platforms)
            )
            if r.platforms is not None
            else r
            for r in spec.pip
        ),
        pip_index_url=spec.pip_index_url,
        pip_extra_index_urls=spec.pip_extra_index_urls,
    )
    text = _rendered_text(
        new,
        target=target,
        variant=variant,
        cuda=cuda,
        lines=lines,
        companion_notes=companion_notes,
        per_platform=per_platform,
        every=every,
    )
    return RenderedEnvironment(
        spec=new,
        text=text,
        target=target,
        variant=variant,
        cuda=cuda if variant == "cuda" else None,
        python=pinned_python,
        solve_channels=tuple(solve_channels),
        platform_dependencies=per_platform,
        lines=lines,
        gpus=gpus,
        gpu_source=gpu_source,
        companion_notes=tuple(companion_notes),
        python_option=python,
    )


def _pinned_dependencies(
    spec: EnvironmentSpec,
    *,
    variant: str,
    cuda: str | None,
    python: str | None,
    lines: Mapping[str, LineChoice],
) -> tuple[list[str], list[frozenset[str] | None], str | None]:
    """``spec``'s dependencies with Python pinned to ``python`` and, without CUDA ``lines``, the
    ``cuda-version`` line bounded for ``cuda`` (added when missing); the platforms each one is
    selected on; and the Python ``major.minor`` pinned (None: none)."""
    deps = list(spec.dependencies)
    where = list(spec.dependency_platforms) or [None] * len(deps)
    pinned_python: str | None = None
    for i, dep in enumerate(deps):
        if spec_name(dep) == "python":
            if python is not None:
                deps[i] = f"python {python}.*"
            pinned_python = python_pin(deps[i])
        elif spec_name(dep) == "cuda-version" and cuda is not None and not lines:
            deps[i] = cuda_version_spec(cuda)
    if python is not None and pinned_python is None:
        deps.insert(0, f"python {python}.*")
        where.insert(0, None)
        pinned_python = python
    if (
        variant == "cuda"
        and cuda is not None
        and not lines
        and not any(spec_name(d) == "cuda-version" for d in deps)
    ):
        deps.append(cuda_version_spec(cuda))
        where.append(None)
    return deps, where, pinned_python


def _per_platform_dependencies(
    deps: list[str],
    where: list[frozenset[str] | None],
    lines: Mapping[str, LineChoice],
    *,
    every: tuple[str, ...],
    leave_out: Mapping[str, frozenset[str]] | None,
    stated: tuple[str, ...],
) -> dict[str, tuple[str, ...]]:
    """Per platform, the dependencies to solve it with, where they differ between platforms:
    each CUDA line's pins (:func:`_pin_line`), the selectors' choices and ``leave_out``'s
    omissions; empty when every platform takes ``deps`` as they are.

    Args:
        deps: the dependencies, every platform's.
        where: per dependency, the platforms it is selected on (None: every one).
        lines: per platform, the CUDA line chosen.
        every: the platforms locked (the stated ones, else every platform dlsetup knows).
        leave_out: per platform, packages to leave out there.
        stated: the platforms asked for or written in the file (may be empty).
    """

    def on(platform: str) -> list[str]:
        return [d for d, w in zip(deps, where, strict=True) if w is None or platform in w]

    per_platform = {p: _pin_line(on(p), choice) for p, choice in lines.items()}
    if any(w is not None for w in where):
        per_platform = {p: per_platform.get(p, tuple(on(p))) for p in every}
    if leave_out and any(leave_out.values()):
        per_platform = {
            p: tuple(
                d
                for d in per_platform.get(p, tuple(on(p)))
                if spec_name(d) not in leave_out.get(p, frozenset())
            )
            for p in (stated or tuple(leave_out))
        }
    return per_platform


def _solve_channels(given: tuple[str, ...], platforms: tuple[str, ...]) -> tuple[str, ...]:
    """The channels to solve with (:func:`_conda_channels`), each one a non-empty line.

    Raises:
        InputError: a channel is empty or contains a control character.
    """
    solve_channels = _conda_channels(given, platforms)
    for channel in solve_channels:
        if _CONTROL_RE.search(channel) or not channel.strip():
            raise InputError(
                f"invalid channel {strip_auth(channel)!r}: it is empty or contains a control "
                "character",
                fix="give a channel name such as conda-forge or a URL such as https://host/channel",
            )
    return solve_channels


def _rendered_text(
    new: EnvironmentSpec,
    *,
    target: str,
    variant: str,
    cuda: str | None,
    lines: Mapping[str, LineChoice],
    companion_notes: tuple[str, ...],
    per_platform: Mapping[str, tuple[str, ...]],
    every: tuple[str, ...],
) -> str:
    """The YAML text of the rendered file: the header comments with what it was rendered for,
    then ``name:``, ``channels:``, ``platforms:``, the pip indexes and ``dependencies:``."""
    out = list(new.header)
    solved = f"CUDA {cuda} (__cuda={cuda})" if cuda else "no CUDA (no __cuda virtual package)"
    out.append(f"# Rendered by dlsetup: target {target}, variant {variant}, {solved}.")
    for platform, choice in lines.items():
        out.append(f"# CUDA line for {platform}: {choice.line}. {choice.reason}.")
    out += [f"# Companions: {note}." for note in companion_notes]
    out.append(f"name: {_scalar(new.name)}")
    out.append("channels:")
    out += [f"  - {_scalar(c)}" for c in new.channels]
    if new.platforms:
        out.append("platforms:")
        out += [f"  - {_scalar(p)}" for p in new.platforms]
    out += _pip_repositories_text(new)
    out.append("dependencies:")
    if per_platform:
        out += [f"  - {_scalar(d)}{sel}" for d, sel in _with_selectors(per_platform)]
    else:
        out += [f"  - {_scalar(d)}" for d in new.dependencies]
    out += _pip_text(new, every)
    return "\n".join(out) + "\n"


def written_channels(given: tuple[str, ...], platforms: tuple[str, ...]) -> tuple[str, ...]:
    """The ``channels:`` a rendered file (and its lock) lists for ``given``: as conda reads them
    (:func:`_conda_channels`), credentials stripped."""
    return tuple(strip_auth(c) for c in _conda_channels(given, platforms))


def _conda_channels(given: tuple[str, ...], platforms: tuple[str, ...]) -> tuple[str, ...]:
    """``given`` as conda reads it: ``nodefaults`` dropped, ``defaults`` expanded (once)."""
    out: list[str] = []
    for channel in given:
        if channel == "nodefaults":
            continue
        expanded: tuple[str, ...] = (channel,)
        if channel == "defaults":
            expanded = DEFAULTS_CHANNELS
            if any(PLATFORM_INFO[p].os == "win" for p in platforms if p in PLATFORM_INFO):
                expanded = (*expanded, DEFAULTS_WINDOWS_CHANNEL)
        out += [c for c in expanded if c not in out]
    return tuple(out) or (DEFAULT_CHANNEL,)


def _pip_repositories_text(spec: EnvironmentSpec) -> list[str]:
    """conda-lock's ``pip-repositories:`` (and ``allow-pypi-requests: false`` for an
    ``--index-url``): the indexes of the ``pip:`` section, credentials stripped."""
    urls = [u for u in (spec.pip_index_url, *spec.pip_extra_index_urls) if u is not None]
    if not urls:
        return []
    out = ["pip-repositories:", *(f"  - {_scalar(strip_auth(u))}" for u in urls)]
    if spec.pip_index_url is not None:
        out.append("allow-pypi-requests: false")
    return out


def _pip_text(spec: EnvironmentSpec, platforms: tuple[str, ...]) -> list[str]:
    """The ``pip:`` section, a requirement true on some platforms only once per platform."""
    if not spec.pip:
        return []
    out = ["  - pip:"]
    for req in spec.pip:
        if req.platforms is None or set(platforms) <= req.platforms:
            out.append(f"    - {_scalar(req.text)}")
        else:
            out += [
                f"    - {_scalar(req.text)}  # [{PLATFORM_INFO[p].selector}]"
                for p in platforms
                if p in req.platforms
            ]
    return out


def _pin_build(dep: str, build_glob: str) -> str:
    """``dep`` with the line's build glob: ``pytorch`` / ``pytorch >=2.5`` / ``pytorch * cuda*``
    -> ``pytorch * cuda129_*`` / ``pytorch >=2.5 cuda129_*``; a spec that names another build, a
    channel or any other field (read by rattler's ``MatchSpec``) is the user's choice and stays."""
    parsed = match_spec(dep)
    if parsed is None or parsed.name is None or parsed.build not in (None, "*", "cuda*", "cuda*_*"):
        return dep
    others = (parsed.channel, parsed.build_number, parsed.md5, parsed.sha256, parsed.subdir)
    if any(value is not None for value in others) or parsed.file_name is not None:
        return dep
    version = str(parsed.version) if parsed.version is not None else "*"
    return f"{parsed.name.normalized} {version} {build_glob}"


def _pin_line(deps: list[str], choice: LineChoice) -> tuple[str, ...]:
    """The dependencies with ``choice``'s builds, ``cuda-version`` and ``arm-variant`` pinned."""
    builds = {b.package: b.build_glob for b in choice.builds}
    # torchvision follows pytorch's line; conda-forge's recipes pin only ``pytorch * cuda*``
    builds.update({c.package: c.build_glob for c in choice.companions})
    pinned: list[str] = []
    for dep in deps:
        name = spec_name(dep)
        if name in builds:
            pinned.append(_pin_build(dep, builds[name]))
        elif name not in ("cuda-version", "arm-variant"):
            pinned.append(dep)
    pinned += [s for s in choice.specs if spec_name(s) not in builds]
    return tuple(pinned)


def _with_selectors(per_platform: Mapping[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """One list for every platform: a line all platforms share is plain, any other carries
    conda-lock's platform selector (``  # [linux64]``), once per platform that has it."""
    platforms = list(per_platform)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for platform in platforms:
        for dep in per_platform[platform]:
            if dep in seen:
                continue
            seen.add(dep)
            having = [p for p in platforms if dep in per_platform[p]]
            if len(having) == len(platforms):
                out.append((dep, ""))
            else:
                out += [(dep, f"  # [{PLATFORM_INFO[p].selector}]") for p in having]
    return out


def _scalar(text: str) -> str:
    """``text`` as a YAML list item or value: plain when YAML reads it back unchanged, else quoted.

    (``numpy # x`` would lose its tail to a comment, ``1.0`` would become a number.)
    """
    import yaml

    try:
        if yaml.safe_load(f"- {text}") == [text]:
            return text
    except yaml.YAMLError:
        pass
    return json.dumps(text)
