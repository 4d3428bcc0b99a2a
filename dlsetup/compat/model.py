"""The knowledge base as typed, validated records.

``data/compat.yaml`` is parsed into these frozen dataclasses when it is loaded: every key the code
reads is checked for presence and type, and the ``schema`` version selects the reader (as
conda-lock dispatches its lock files on ``version``). A malformed file raises
:class:`dlsetup.errors.KnowledgeBaseError` naming the key path (``conda_forge.frameworks.pytorch.
platforms.linux-64[0].arch``), the value found and what was expected.

Keys the code does not read (notes, ``arch_note``, ``second_source`` of a row) are allowed and kept
out of the records; the records of the new ``conda_forge`` and ``driver_branch_limits`` sections
refuse unknown keys, so a typo there cannot silently drop a fact.

Only the standard library is imported here, and the records are ``NamedTuple`` classes rather than
frozen dataclasses: as immutable and as typed, but about six times cheaper to define, which keeps
the knowledge base within the 20 ms ``dlsetup lock`` may spend on choosing a CUDA line
(``benchmarks/bench_choice.py``).
"""

# No ``from __future__ import annotations`` here: typing.NamedTuple turns every string annotation
# into a ForwardRef, compiling it, which made importing this module cost twice as much (the 20 ms
# above). Annotations are evaluated at definition: quote a name defined further down.

from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple, NoReturn, TypeVar

from dlsetup.errors import KnowledgeBaseError

#: The schema versions this dlsetup reads, each with its reader (filled in at the end). Schema 2
#: adds the date the data was last refreshed from its sources (``refreshed``, required) and the
#: PyPI upload date of a release (``released``, optional).
SUPPORTED_SCHEMAS: tuple[int, ...] = (1, 2)

Devices = Literal["any", "discrete", "tegra"]
CC = tuple[int, int]

T = TypeVar("T")


class ToolkitDriverRow(NamedTuple):
    """One row of NVIDIA's toolkit -> driver table.

    Attributes:
        cuda: ``"12.4"``.
        release: ``"12.4 GA"``.
        linux: the Linux x86_64 toolkit driver, or None when the table has none.
        windows: the Windows toolkit driver, or None (N/A from 13.0).
    """

    cuda: str
    release: str
    linux: str | None
    windows: str | None


class MvcFamily(NamedTuple):
    """The minor-version-compatibility floor of one CUDA major family."""

    major: int
    linux: str | None
    windows: str | None
    source: str


class TorchRelease(NamedTuple):
    """A PyTorch release's PyPI facts: Python range and CUDA wheel arch lists (None: unknown).

    Attributes:
        variants: ``{variant: arch list or None}``; empty when no variant was read (a release
            added from PyPI while PyTorch's wheel index could not be reached).
        released: the day its first file reached PyPI (``"2026-10-28"``), when read.
        pypi_default: the variant of the wheels on PyPI itself (``"cu132"``), when known.
    """

    key: str
    python_min: str
    python_max: str
    python_experimental: str | None
    variants: Mapping[str, str | None]
    sources: tuple[str, ...]
    released: str | None = None
    pypi_default: str | None = None

    @property
    def has_variant_facts(self) -> bool:
        """Whether any of its CUDA variants has a verified arch list (the rules can be read)."""
        return any(arch is not None for arch in self.variants.values())


class TfRelease(NamedTuple):
    """A TensorFlow release's tested build configuration (Linux GPU)."""

    key: str
    python_min: str
    python_max: str
    cuda: str
    cudnn: str
    sources: tuple[str, ...]
    released: str | None = None


class TorchFacts(NamedTuple):
    """PyPI / download.pytorch.org facts of PyTorch."""

    index_url: str
    releases: Mapping[str, TorchRelease]


class TensorflowFacts(NamedTuple):
    """PyPI facts of TensorFlow."""

    windows_native_gpu_last: str
    and_cuda_first: str
    and_cuda_first_sources: tuple[str, ...]
    windows_fix: str
    releases: Mapping[str, TfRelease]


class DriverBranchLimit(NamedTuple):
    """The last driver branch a GPU generation can take, and the CUDA version it reports.

    Attributes:
        architecture: ``"Kepler"``.
        cc_min / cc_max: the compute capabilities covered, inclusive.
        last_branch: ``"R470"``.
        last_driver: the toolkit driver of ``last_cuda`` on that branch (``"470.42.01"``).
        last_cuda: the newest CUDA such a driver supports (``"11.4"``).
        sources: where the fact comes from.
    """

    architecture: str
    cc_min: CC
    cc_max: CC
    last_branch: str
    last_driver: str
    last_cuda: str
    sources: tuple[str, ...]

    def covers(self, cc: CC) -> bool:
        """True when a GPU of compute capability ``cc`` belongs to this generation."""
        return self.cc_min <= cc <= self.cc_max


class CondaForgeLine(NamedTuple):
    """One build line of a framework on one conda-forge platform.

    Attributes:
        framework: ``pytorch`` or ``tensorflow`` (the knowledge-base key).
        package: the conda package name (``pytorch``).
        platform: ``linux-64``, ``linux-aarch64``, ``win-64``, ``osx-64``, ``osx-arm64``.
        cuda: the CUDA version of the line (``"12.9"``), None for the CPU build.
        build: the build-string glob (``"cuda129_*"``, ``"cpu_*"``).
        arch: the arch list as the recipe writes it (``"5.0;6.0;...;12.0+PTX"``), None for CPU.
        glibc: the ``__glibc`` floor (``"2.28"``), None where not Linux.
        arm_variant: ``sbsa`` / ``tegra`` on linux-aarch64 CUDA builds (the ``arm-variant``
            package's build string), else None.
        devices: which GPUs the line's CUDA toolkit drives: ``any``, ``discrete`` (not Jetson) or
            ``tegra`` (Jetson only).
        mps: the build has Apple's Metal (MPS) backend.
        sources: where the facts come from (keys of ``sources`` or text).
    """

    framework: str
    package: str
    platform: str
    cuda: str | None
    build: str
    arch: str | None
    glibc: str | None
    arm_variant: str | None
    devices: Devices
    mps: bool
    sources: tuple[str, ...]


class CondaForgeFramework(NamedTuple):
    """What conda-forge builds of one framework now.

    Attributes:
        name: ``pytorch`` / ``tensorflow``.
        package: the conda package name.
        release: the version the facts were read at (``"2.13.0"``).
        python: the Python ``X.Y`` versions built.
        platforms: ``{platform: lines, newest CUDA first, the CPU line last}``.
        sources: where the facts come from.
    """

    name: str
    package: str
    release: str
    python: tuple[str, ...]
    platforms: Mapping[str, tuple[CondaForgeLine, ...]]
    sources: tuple[str, ...]


class CondaForgeFacts(NamedTuple):
    """conda-forge's build matrix."""

    cuda_version_constrains: str
    cuda_version_sources: tuple[str, ...]
    tegra_ccs: frozenset[CC]
    frameworks: Mapping[str, CondaForgeFramework]


class CompanionFacts(NamedTuple):
    """Which release of one of PyTorch's companions (torchvision, torchaudio) goes with each
    PyTorch release.

    Attributes:
        name: ``torchvision`` / ``torchaudio`` (the knowledge-base key and the package name).
        pairs: ``{torch release key: companion release key}`` (``{"2.13": "0.28"}``), oldest first.
        stable_abi_from: the first companion release whose compiled extension is built on torch's
            stable ABI (runs with its own torch release and every later one), or None.
        last: the newest release published where the project has stopped (torchaudio ``2.11``),
            else None.
        sources: where the facts come from.
    """

    name: str
    pairs: Mapping[str, str]
    stable_abi_from: str | None
    last: str | None
    sources: tuple[str, ...]


class CondaForgeCompanion(NamedTuple):
    """What conda-forge builds of one of PyTorch's companions (torchvision, torchaudio).

    Attributes:
        name: ``torchvision`` / ``torchaudio`` (a key of :attr:`KnowledgeBase.companions`).
        package: the conda package name.
        release: the newest version published (``"0.28.0"``).
        pytorch: the pytorch release key its builds were made with (``"2.13"``); pytorch's
            run_exports pin it, so the builds install beside that pytorch release only.
        builds: ``{platform: build-string globs}`` (``("cuda130_*", "cuda129_*", "cpu_*")``):
            each one of pytorch's lines on that platform, or ``cpu_*``.
        note: a sentence on what is missing and why, or None.
        sources: where the facts come from.
    """

    name: str
    package: str
    release: str
    pytorch: str
    builds: Mapping[str, tuple[str, ...]]
    note: str | None
    sources: tuple[str, ...]

    def has_build(self, platform: str, build_glob: str) -> bool:
        """Whether a build of ``build_glob`` (``"cuda129_*"``, ``"cpu_*"``) exists for
        ``platform``."""
        return build_glob in self.builds.get(platform, ())


class KnowledgeBase(NamedTuple):
    """The whole knowledge base, validated.

    Attributes:
        schema: the file's schema version.
        sources: ``{key: citation}``.
        toolkit_drivers: NVIDIA's toolkit -> driver rows, oldest first.
        mvc: ``{major: family}``.
        torch: PyPI PyTorch facts.
        tensorflow: PyPI TensorFlow facts.
        driver_limits: the last driver branch of old GPU generations.
        conda_forge: conda-forge's build matrix.
        companions: ``{name: facts}`` of torch's companions (torchvision, torchaudio).
        conda_forge_companions: ``{name: builds}`` of the companions on conda-forge.
        refreshed: the day the data was last refreshed from its sources (``"2026-11-27"``;
            ``tools/refresh_compat.py``), None in a schema-1 file.
    """

    schema: int
    sources: Mapping[str, str]
    toolkit_drivers: tuple[ToolkitDriverRow, ...]
    mvc: Mapping[int, MvcFamily]
    torch: TorchFacts
    tensorflow: TensorflowFacts
    driver_limits: tuple[DriverBranchLimit, ...]
    conda_forge: CondaForgeFacts
    companions: Mapping[str, CompanionFacts]
    conda_forge_companions: Mapping[str, CondaForgeCompanion]
    refreshed: str | None = None

    def cite(self, names: tuple[str, ...]) -> str:
        """The citations of ``names`` (source keys resolved, free text kept), ``"; "``-joined."""
        return "; ".join(self.sources.get(n, n) for n in names)


# -- reading --------------------------------------------------------------------------------------


class _Reader:
    """Typed access to one YAML mapping, naming the key path in every error."""

    def __init__(self, value: object, path: str, origin: str) -> None:
        self.path = path
        self.origin = origin
        if not isinstance(value, dict):
            self.fail(value, "a mapping")
        self.data: dict[str, Any] = value

    def fail(self, value: object, expected: str, key: str | None = None) -> NoReturn:
        where = self.path if key is None else self.key_path(key)
        found = "null" if value is None else f"{type(value).__name__} {value!r}"
        raise KnowledgeBaseError(
            f"{self.origin}: {where or '(top level)'}: expected {expected}, found {found}",
            fix=f"fix {where or 'the document'} in {self.origin} (every fact needs its source; "
            "see the rules at the top of the file)",
        )

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str, *, required: bool = True) -> object:
        if key not in self.data:
            if required:
                raise KnowledgeBaseError(
                    f"{self.origin}: missing key {self.key_path(key)}",
                    fix=f"add {self.key_path(key)} to {self.origin}",
                )
            return None
        value: object = self.data[key]
        return value

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(value, 'a non-empty string (quote version numbers: "12.9")', key)
        return value

    def opt_text(self, key: str) -> str | None:
        value = self.raw(key, required=False)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(value, 'a string or null (quote version numbers: "12.9")', key)
        return value

    def flag(self, key: str) -> bool:
        value = self.raw(key, required=False)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.fail(value, "true or false", key)
        return value

    def sources(self, key: str = "source") -> tuple[str, ...]:
        value = self.raw(key)
        if isinstance(value, str) and value.strip():
            return (value,)
        if (
            isinstance(value, list)
            and value
            and all(isinstance(v, str) and v.strip() for v in value)
        ):
            return tuple(value)
        self.fail(value, "a source: a string or a non-empty list of strings", key)

    def text_list(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            self.fail(value, "a non-empty list of strings", key)
        return tuple(value)

    def sub(self, key: str) -> "_Reader":
        return _Reader(self.raw(key), self.key_path(key), self.origin)

    def items(self, key: str) -> "list[tuple[str, _Reader]]":
        """The entries of the mapping at ``key``, each as a reader; keys must be strings."""
        mapping = self.sub(key)
        out: list[tuple[str, _Reader]] = []
        for k, v in mapping.data.items():
            if not isinstance(k, str):
                mapping.fail(k, 'string keys (quote version keys: "2.10", not 2.10)')
            out.append((k, _Reader(v, mapping.key_path(k), self.origin)))
        return out

    def rows(self, key: str) -> "list[_Reader]":
        value = self.raw(key)
        if not isinstance(value, list) or not value:
            self.fail(value, "a non-empty list", key)
        return [_Reader(v, f"{self.key_path(key)}[{i}]", self.origin) for i, v in enumerate(value)]

    def only(self, *allowed: str) -> None:
        """Refuse keys outside ``allowed`` (the strict records)."""
        extra = sorted(k for k in self.data if k not in allowed)
        if extra:
            raise KnowledgeBaseError(
                f"{self.origin}: unknown key {self.key_path(str(extra[0]))} (known keys: "
                f"{', '.join(allowed)})",
                fix=f"remove or rename it in {self.origin}",
            )


def _cc(reader: _Reader, key: str) -> CC:
    text = reader.text(key)
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        reader.fail(text, 'a compute capability "X.Y"', key)
    return int(parts[0]), int(parts[1])


def _version(reader: _Reader, key: str, value: str) -> str:
    parts = value.split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        reader.fail(value, 'a version "X.Y"', key)
    return value


def _date(reader: _Reader, key: str) -> str:
    """A calendar day written ``"YYYY-MM-DD"`` (quoted: YAML would make an unquoted one a date
    object, which the JSON cache cannot carry)."""
    import datetime

    value = reader.raw(key)
    ok = isinstance(value, str) and len(value) == 10
    if ok:
        try:
            datetime.date.fromisoformat(str(value))
        except ValueError:
            ok = False
    if not ok:
        reader.fail(value, 'a quoted date "YYYY-MM-DD"', key)
    return str(value)


def _opt_date(reader: _Reader, key: str) -> str | None:
    return None if reader.raw(key, required=False) is None else _date(reader, key)


def _check(reader: _Reader, key: str, value: T, ok: Callable[[T], bool], expected: str) -> T:
    if not ok(value):
        reader.fail(value, expected, key)
    return value


def _toolkit_rows(top: _Reader) -> tuple[ToolkitDriverRow, ...]:
    section = top.sub("cuda_toolkit_drivers")
    section.sources()
    value = section.raw("rows")
    path = section.key_path("rows")
    if not isinstance(value, list) or not value:
        section.fail(value, "a non-empty list", "rows")
    rows: list[ToolkitDriverRow] = []
    for i, row in enumerate(value):
        ok = (
            isinstance(row, list)
            and len(row) == 4
            and all(isinstance(c, str) for c in row[:2])
            and all(c is None or isinstance(c, str) for c in row[2:])
        )
        if not ok:
            raise KnowledgeBaseError(
                f"{top.origin}: {path}[{i}]: expected [cuda, release, linux driver or null, "
                f"windows driver or null] as strings, found {row!r}",
                fix=f"fix {path}[{i}] in {top.origin}",
            )
        rows.append(ToolkitDriverRow(row[0], row[1], row[2], row[3]))
    return tuple(rows)


def _mvc(top: _Reader) -> dict[int, MvcFamily]:
    section = top.sub("minor_version_compatibility")
    out: dict[int, MvcFamily] = {}
    for major, fam in section.items("families"):
        if not major.isdigit():
            fam.fail(major, 'a CUDA major ("12") as the key')
        out[int(major)] = MvcFamily(
            int(major), fam.opt_text("linux"), fam.opt_text("windows"), fam.sources()[0]
        )
    return out


def _torch(top: _Reader) -> TorchFacts:
    section = top.sub("pytorch")
    index_url = _check(
        section,
        "index_url",
        section.text("index_url"),
        lambda u: "{variant}" in u,
        "a URL pattern with {variant}",
    )
    releases: dict[str, TorchRelease] = {}
    for key, rel in section.items("releases"):
        variants: dict[str, str | None] = {}
        table = rel.sub("variants")
        for name in table.data:
            if not isinstance(name, str) or not name.startswith("cu"):
                rel.fail(name, 'variant names like "cu126"', "variants")
            variants[name] = table.opt_text(name)
        pypi_default = rel.opt_text("pypi_default")
        if pypi_default is not None and not pypi_default.startswith("cu"):
            rel.fail(pypi_default, 'a variant name like "cu130"', "pypi_default")
        releases[key] = TorchRelease(
            _version(rel, "key", key),
            _version(rel, "python_min", rel.text("python_min")),
            _version(rel, "python_max", rel.text("python_max")),
            rel.opt_text("python_experimental"),
            variants,
            rel.sources(),
            _opt_date(rel, "released"),
            pypi_default,
        )
    return TorchFacts(index_url, releases)


def _tensorflow(top: _Reader) -> TensorflowFacts:
    section = top.sub("tensorflow")
    releases: dict[str, TfRelease] = {}
    for key, rel in section.items("releases"):
        releases[key] = TfRelease(
            _version(rel, "key", key),
            rel.text("python_min"),
            rel.text("python_max"),
            _version(rel, "cuda", rel.text("cuda")),
            rel.text("cudnn"),
            rel.sources(),
            _opt_date(rel, "released"),
        )
    return TensorflowFacts(
        section.text("windows_native_gpu_last"),
        section.text("and_cuda_first"),
        section.sources("and_cuda_first_source"),
        section.text("windows_fix"),
        releases,
    )


def _driver_limits(top: _Reader) -> tuple[DriverBranchLimit, ...]:
    out: list[DriverBranchLimit] = []
    for row in top.rows("driver_branch_limits"):
        row.only(
            "architecture",
            "cc_min",
            "cc_max",
            "last_branch",
            "last_driver",
            "last_cuda",
            "source",
            "second_source",
        )
        sources = row.sources() + (
            row.sources("second_source") if "second_source" in row.data else ()
        )
        out.append(
            DriverBranchLimit(
                row.text("architecture"),
                _cc(row, "cc_min"),
                _cc(row, "cc_max"),
                row.text("last_branch"),
                row.text("last_driver"),
                _version(row, "last_cuda", row.text("last_cuda")),
                sources,
            )
        )
    return tuple(out)


_LINE_KEYS = ("cuda", "build", "arch", "glibc", "arm_variant", "devices", "mps", "source")


def _line(row: _Reader, framework: str, package: str, platform: str) -> CondaForgeLine:
    row.only(*_LINE_KEYS)
    if "cuda" not in row.data:
        row.raw("cuda")  # raises: the key is required (null for the CPU build)
    cuda = row.opt_text("cuda")
    if cuda is not None:
        _version(row, "cuda", cuda)
    build = row.text("build")
    arch = row.opt_text("arch")
    if cuda is not None and arch is None:
        row.fail(None, "the arch list of a CUDA line", "arch")
    if cuda is not None and not build.startswith("cuda"):
        row.fail(build, 'a CUDA build-string glob ("cuda129_*")', "build")
    if cuda is None and not build.startswith("cpu"):
        row.fail(build, 'a CPU build-string glob ("cpu_*")', "build")
    glibc = row.opt_text("glibc")
    if glibc is not None:
        _version(row, "glibc", glibc)
    arm_variant = row.opt_text("arm_variant")
    if arm_variant not in (None, "sbsa", "tegra"):
        row.fail(arm_variant, "sbsa or tegra", "arm_variant")
    devices = row.opt_text("devices") or "any"
    if devices not in ("any", "discrete", "tegra"):
        row.fail(devices, "any, discrete or tegra", "devices")
    return CondaForgeLine(
        framework,
        package,
        platform,
        cuda,
        build,
        arch,
        glibc,
        arm_variant,
        devices,  # type: ignore[arg-type]  # checked just above
        row.flag("mps"),
        row.sources(),
    )


def _conda_forge(top: _Reader) -> CondaForgeFacts:
    section = top.sub("conda_forge")
    section.only("cuda_version_package", "tegra_ccs", "frameworks")
    cv = section.sub("cuda_version_package")
    cv.only("constrains", "source")
    tegra = section.sub("tegra_ccs")
    tegra.only("values", "source")
    tegra.sources()
    tegra_ccs: set[CC] = set()
    for i, text in enumerate(tegra.text_list("values")):
        parts = text.split(".")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            tegra.fail(text, 'compute capabilities "X.Y"', f"values[{i}]")
        tegra_ccs.add((int(parts[0]), int(parts[1])))
    frameworks: dict[str, CondaForgeFramework] = {}
    for name, fw in section.items("frameworks"):
        fw.only("package", "release", "python", "python_note", "source", "platforms")
        package = fw.text("package")
        platforms: dict[str, tuple[CondaForgeLine, ...]] = {}
        table = fw.sub("platforms")
        for platform in table.data:
            lines = tuple(_line(row, name, package, platform) for row in table.rows(str(platform)))
            cudas = [line.cuda for line in lines if line.cuda is not None]
            if sum(1 for line in lines if line.cuda is None) > 1:
                fw.fail(platform, "at most one CPU line (cuda: null)", f"platforms.{platform}")
            if cudas != sorted(
                cudas, key=lambda c: tuple(int(p) for p in c.split(".")), reverse=True
            ):
                fw.fail(cudas, "CUDA lines newest first", f"platforms.{platform}")
            platforms[str(platform)] = lines
        frameworks[name] = CondaForgeFramework(
            name,
            package,
            _version(fw, "release", fw.text("release")),
            fw.text_list("python"),
            platforms,
            fw.sources(),
        )
    return CondaForgeFacts(cv.text("constrains"), cv.sources(), frozenset(tegra_ccs), frameworks)


def _release_tuple(key: str) -> tuple[int, ...]:
    return tuple(int(p) for p in key.split("."))


def _companions(top: _Reader) -> dict[str, CompanionFacts]:
    out: dict[str, CompanionFacts] = {}
    for name, section in top.items("companions"):
        section.only(
            "package",
            "source",
            "pairs",
            "stable_abi_from",
            "stable_abi_source",
            "last",
            "last_source",
        )
        if section.text("package") != name:
            section.fail(section.data["package"], f"the package name {name!r}", "package")
        pairs: dict[str, str] = {}
        table = section.sub("pairs")
        if not table.data:
            section.fail(table.data, "a non-empty mapping of torch release -> release", "pairs")
        for torch_key in table.data:
            if not isinstance(torch_key, str):
                table.fail(torch_key, 'string keys (quote version keys: "2.10", not 2.10)')
            _version(table, torch_key, torch_key)
            pairs[torch_key] = _version(table, torch_key, table.text(torch_key))
        keys = list(pairs)
        if keys != sorted(keys, key=_release_tuple):
            section.fail(keys, "torch releases oldest first", "pairs")
        values = list(pairs.values())
        if values != sorted(values, key=_release_tuple):
            section.fail(values, "companion releases rising with torch's", "pairs")
        stable = section.opt_text("stable_abi_from")
        last = section.opt_text("last")
        for key, value, source in (
            ("stable_abi_from", stable, "stable_abi_source"),
            ("last", last, "last_source"),
        ):
            if value is not None and value not in values:
                section.fail(value, "a companion release of pairs", key)
            if value is not None:
                section.sources(source)  # a fact needs its source
        if last is not None and last != values[-1]:
            section.fail(last, f"the newest release of pairs ({values[-1]})", "last")
        out[name] = CompanionFacts(name, pairs, stable, last, section.sources())
    return out


def _conda_forge_companions(
    top: _Reader, conda_forge: CondaForgeFacts, companions: Mapping[str, CompanionFacts]
) -> dict[str, CondaForgeCompanion]:
    """``conda_forge_companions``: every build glob one of pytorch's on that platform (or
    ``cpu_*``), every companion one the pairs table knows."""
    section = top.sub("conda_forge_companions")
    section.only("pytorch_pin", "packages")
    pin = section.sub("pytorch_pin")
    pin.only("rule", "source")
    pin.text("rule")
    pytorch = conda_forge.frameworks.get("pytorch")
    if pytorch is None:
        section.fail(None, "conda_forge.frameworks.pytorch to pair with", "packages")
    out: dict[str, CondaForgeCompanion] = {}
    for name, entry in section.items("packages"):
        entry.only("package", "release", "pytorch", "arch", "note", "source", "builds")
        if name not in companions:
            entry.fail(name, f"a companion of companions: ({', '.join(companions)})", "package")
        package = entry.text("package")
        release = _version(entry, "release", entry.text("release"))
        torch_key = _version(entry, "pytorch", entry.text("pytorch"))
        entry.opt_text("arch")
        table = entry.sub("builds")
        if not table.data:
            entry.fail(table.data, "a non-empty mapping of platform -> build globs", "builds")
        builds: dict[str, tuple[str, ...]] = {}
        for platform in table.data:
            lines = pytorch.platforms.get(str(platform))
            if lines is None:
                table.fail(platform, f"a platform of pytorch's ({', '.join(pytorch.platforms)})")
            globs = table.text_list(str(platform))
            known = {line.build for line in lines}
            for glob in globs:
                if glob not in known:
                    table.fail(
                        glob,
                        f"one of pytorch's build globs there ({', '.join(sorted(known))})",
                        str(platform),
                    )
            builds[str(platform)] = globs
        out[name] = CondaForgeCompanion(
            name, package, release, torch_key, builds, entry.opt_text("note"), entry.sources()
        )
    return out


def _read_v1(top: _Reader) -> KnowledgeBase:
    return _read(top, 1)


def _read_v2(top: _Reader) -> KnowledgeBase:
    """Schema 2: schema 1, plus ``refreshed`` (the day the data was last refreshed from its
    sources) and every release of ``pytorch``/``tensorflow`` citing keys of ``sources``."""
    return _read(top, 2)


def _read(top: _Reader, schema: int) -> KnowledgeBase:
    refreshed = _date(top, "refreshed") if schema >= 2 else None
    torch = _torch(top)
    tensorflow = _tensorflow(top)
    table = top.sub("sources")
    sources = {str(key): table.text(str(key)) for key in table.data}
    limits = _driver_limits(top)
    conda_forge = _conda_forge(top)
    # The new sections cite by key only: each key must exist in `sources`.
    cited: list[tuple[str, tuple[str, ...]]] = [
        (f"driver_branch_limits ({limit.architecture})", limit.sources) for limit in limits
    ]
    for fw in conda_forge.frameworks.values():
        cited.append((f"conda_forge.frameworks.{fw.name}", fw.sources))
        for platform, lines in fw.platforms.items():
            for line in lines:
                cited.append(
                    (
                        f"conda_forge.frameworks.{fw.name}.platforms.{platform} ({line.build})",
                        line.sources,
                    )
                )
    cited.append(("conda_forge.cuda_version_package", conda_forge.cuda_version_sources))
    companions = _companions(top)
    for comp in companions.values():
        section = top.sub("companions").sub(comp.name)
        cited.append((f"companions.{comp.name}", comp.sources))
        for key in ("stable_abi_source", "last_source"):
            if key in section.data:
                cited.append((f"companions.{comp.name}.{key}", section.sources(key)))
    cf_companions = _conda_forge_companions(top, conda_forge, companions)
    cited.append(
        (
            "conda_forge_companions.pytorch_pin",
            top.sub("conda_forge_companions").sub("pytorch_pin").sources(),
        )
    )
    for built in cf_companions.values():
        cited.append((f"conda_forge_companions.packages.{built.name}", built.sources))
    if schema >= 2:
        for label, rel_sources in [
            *((f"pytorch.releases.{r.key}", r.sources) for r in torch.releases.values()),
            *((f"tensorflow.releases.{r.key}", r.sources) for r in tensorflow.releases.values()),
        ]:
            cited.append((label, rel_sources))
    for where, names in cited:
        unknown = [n for n in names if n not in sources]
        if unknown:
            raise KnowledgeBaseError(
                f"{top.origin}: {where}: source {unknown[0]!r} is not a key of sources",
                fix=f"add {unknown[0]} to sources: in {top.origin}, with its citation",
            )
    return KnowledgeBase(
        schema,
        sources,
        _toolkit_rows(top),
        _mvc(top),
        torch,
        tensorflow,
        limits,
        conda_forge,
        companions,
        cf_companions,
        refreshed,
    )


_READERS: dict[int, Callable[[_Reader], KnowledgeBase]] = {1: _read_v1, 2: _read_v2}


def parse_knowledge_base(document: object, origin: str = "compat.yaml") -> KnowledgeBase:
    """Validate a parsed knowledge-base document and return its typed records.

    Args:
        document: what the YAML parser returned.
        origin: the file's name, for messages.

    Raises:
        KnowledgeBaseError: a missing key, a value of the wrong type, an unknown key in a strict
            record, or a ``schema`` this dlsetup cannot read; the message names the key path.
    """
    top = _Reader(document, "", origin)
    schema = top.raw("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        top.fail(schema, "an integer schema version", "schema")
    reader = _READERS.get(schema)
    if reader is None:
        raise KnowledgeBaseError(
            f"{origin}: schema {schema} is not one this dlsetup reads (it reads "
            f"{', '.join(str(s) for s in SUPPORTED_SCHEMAS)})",
            fix="install the dlsetup release that ships this knowledge base, or set schema: to "
            "a supported version",
        )
    return reader(top)
