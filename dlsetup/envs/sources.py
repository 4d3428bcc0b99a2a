"""The package sources users already configured: pip's and uv's indexes, conda's channels, pixi's
mirrors, each with where it was configured.

Many users reach PyPI, conda-forge and PyTorch's index only through a mirror, set once in the
tools' own configuration. dlsetup reads those settings, with each tool's precedence, and uses them
for ``lock`` and ``create`` on both backends; ``--index-url``, ``--torch-index-url`` and
``--channel`` still win. Every :class:`Source` names its origin (``pip config
/etc/pip.conf [global] extra-index-url``, ``UV_DEFAULT_INDEX``, ``~/.condarc channel_alias``), so
a plan and a lock header can say where each package came from.

What is read, in each tool's order (a later place overrides an earlier one, key by key):

* pip (https://pip.pypa.io/en/stable/topics/configuration/): the global files
  ``$XDG_CONFIG_DIRS/pip/pip.conf`` (``/etc/xdg/pip/pip.conf``) and ``/etc/pip.conf``, the user
  files ``~/.pip/pip.conf`` and ``$XDG_CONFIG_HOME/pip/pip.conf`` (``~/.config/pip/pip.conf``,
  skipped when ``PIP_CONFIG_FILE`` names a file that exists), the site file
  ``$VIRTUAL_ENV/pip.conf``, then ``PIP_CONFIG_FILE``, then ``PIP_INDEX_URL``,
  ``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS``; ``PIP_CONFIG_FILE=/dev/null`` reads no file. In a
  file, ``[install]`` overrides ``[global]``. ``PIP_NO_INDEX`` drops the indexes.
* uv (https://docs.astral.sh/uv/concepts/configuration-files/): ``/etc/uv/uv.toml``
  (``$XDG_CONFIG_DIRS/uv/uv.toml``), then ``~/.config/uv/uv.toml`` (``$XDG_CONFIG_HOME``), or
  ``UV_CONFIG_FILE`` alone, none with ``UV_NO_CONFIG``: ``index-url``, ``extra-index-url``,
  ``find-links``, ``[[index]]`` (``default = true`` is the default index), the same keys under
  ``[pip]``; then ``UV_INDEX_URL``/``UV_DEFAULT_INDEX``, ``UV_INDEX``, ``UV_EXTRA_INDEX_URL``,
  ``UV_FIND_LINKS``. uv's settings come before pip's (dlsetup runs uv).
* conda (https://docs.conda.io/projects/conda/en/latest/user-guide/configuration/): ``/etc/conda/
  .condarc``, ``$XDG_CONFIG_HOME/conda/.condarc``, ``~/.conda/.condarc``, ``~/.condarc``, then
  ``$CONDARC``: ``channels`` (lists merged, a later file's first), ``channel_alias``,
  ``custom_channels``, ``default_channels``.
* pixi (https://pixi.sh/latest/reference/pixi_configuration/): ``/etc/pixi/config.toml``,
  ``$XDG_CONFIG_HOME/pixi/config.toml``, ``$PIXI_HOME/config.toml`` (``~/.pixi/config.toml``):
  ``[mirrors]``, an original URL prefix to its mirrors.

A URL may carry credentials as the user wrote them; :attr:`Source.shown` is the only form that
goes into messages, and files get :func:`dlsetup.envs.credentials.strip_auth`'s. A malformed file
is an :class:`dlsetup.errors.InputError` naming the file, the value and the fix; a missing one is
skipped. Standard library and dlsetup's bounded reader only.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlsetup.envs.credentials import redact, strip_auth
from dlsetup.errors import InputError

#: the kinds of :class:`Source`
KINDS = ("index", "find-links", "channel", "channel-alias", "mirror")
#: PyPI's simple index, the default index where none is configured
PYPI_INDEX = "https://pypi.org/simple"
#: conda's channel alias where none is configured
CONDA_ALIAS = "https://conda.anaconda.org"
#: the most bytes a configuration file may have
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Source:
    """One package source, and where it was configured.

    Attributes:
        kind: ``index`` (a simple index), ``find-links`` (a directory or page of wheels),
            ``channel`` (a conda channel), ``channel-alias`` (the base URL conda puts before a
            channel name) or ``mirror`` (pixi: ``url`` stands in for ``name``).
        url: as configured; may hold credentials: show :attr:`shown`, write :attr:`stored`.
        origin: where it was set, in the user's words: ``pip config /etc/pip.conf [global]
            extra-index-url``, ``UV_DEFAULT_INDEX``, ``~/.condarc channel_alias``,
            ``--torch-index-url``.
        default: an index that replaces the default one (pip's ``index-url``, uv's default
            index), not an extra one.
        name: a channel's name (``custom_channels``, ``default_channels`` give ``defaults``), or
            the URL prefix a mirror stands in for; empty otherwise.
    """

    kind: str
    url: str
    origin: str
    default: bool = False
    name: str = ""

    @property
    def shown(self) -> str:
        """The URL as messages show it: literal credentials masked, placeholders as written."""
        return redact(self.url)

    @property
    def stored(self) -> str:
        """The URL as files keep it: literal credentials removed, placeholders kept."""
        return strip_auth(self.url)

    def display(self) -> str:
        """``URL (origin)``, credentials masked: what a plan line or a lock header says."""
        return f"{self.shown} ({self.origin})"

    @property
    def origin_kind(self) -> str:
        """What set a PyPI source, for ``--json``: ``option`` (``--index-url``,
        ``--torch-index-url``), ``pip-config`` or ``uv-config`` (a file), ``environment``
        (``PIP_INDEX_URL``, ``UV_INDEX``, ...), or ``default`` (PyPI, PyTorch's index: nothing
        set it)."""
        prefixes = {"--": "option", "pip config ": "pip-config", "uv config ": "uv-config"}
        for prefix, kind in prefixes.items():
            if self.origin.startswith(prefix):
                return kind
        if self.origin.startswith(("PIP_", "UV_")) and self.origin.replace("_", "").isalnum():
            return "environment"
        return "default"


@dataclass(frozen=True)
class CondaSettings:
    """Conda's and pixi's channel settings.

    Attributes:
        channels: ``.condarc`` ``channels`` (kind ``channel``), in priority order.
        channel_alias: ``.condarc`` ``channel_alias`` (None: conda's, ``CONDA_ALIAS``).
        custom_channels: ``.condarc`` ``custom_channels``, one per channel name (``name``).
        default_channels: ``.condarc`` ``default_channels`` (what ``defaults`` means).
        mirrors: pixi's ``[mirrors]``, one per mirror URL (``name``: the prefix it replaces).
    """

    channels: tuple[Source, ...] = ()
    channel_alias: Source | None = None
    custom_channels: tuple[Source, ...] = ()
    default_channels: tuple[Source, ...] = ()
    mirrors: tuple[Source, ...] = ()


@dataclass(frozen=True)
class Places:
    """Where the configuration is looked for: the environment and the file-system roots.

    Attributes:
        env: the environment variables (``PIP_*``, ``UV_*``, ``CONDARC``, ``XDG_*``).
        home: the home directory (``~``).
        root: prepended to the system paths (``/etc/pip.conf``); ``/`` for the machine's.
        prefix: pip's site configuration directory (``$VIRTUAL_ENV``, else ``sys.prefix``).
    """

    env: Mapping[str, str] = field(default_factory=dict)
    home: Path = Path("~")
    root: Path = Path("/")
    prefix: Path | None = None

    @classmethod
    def here(cls) -> Places:
        """This process's environment and this machine's paths."""
        env = dict(os.environ)
        prefix = env.get("VIRTUAL_ENV") or sys.prefix
        return cls(env=env, home=Path.home(), root=Path("/"), prefix=Path(prefix))

    def system(self, path: str) -> Path:
        """A system path (``/etc/pip.conf``) under :attr:`root`."""
        return self.root / path.lstrip("/")

    def xdg_config_home(self) -> Path:
        value = self.env.get("XDG_CONFIG_HOME")
        return Path(value) if value else self.home / ".config"

    def xdg_config_dirs(self) -> list[Path]:
        value = self.env.get("XDG_CONFIG_DIRS") or "/etc/xdg"
        return [self.system(p) for p in value.split(os.pathsep) if p]

    def label(self, path: Path) -> str:
        """``path`` as messages name it: ``~/...`` under the home directory."""
        try:
            return "~/" + str(path.relative_to(self.home))
        except ValueError:
            if self.root != Path("/"):
                try:
                    return "/" + str(path.relative_to(self.root))
                except ValueError:
                    pass
            return str(path)


@dataclass(frozen=True)
class ConfiguredSources:
    """Every source the user configured.

    Attributes:
        pypi: indexes and find-links for PyPI packages: uv's settings, then pip's; at most one
            ``default`` index (the one that replaces PyPI), then the extra indexes, then the
            find-links, in the order each tool searches them.
        conda: the conda channel settings.
    """

    pypi: tuple[Source, ...] = ()
    conda: CondaSettings = field(default_factory=CondaSettings)

    @property
    def default_index(self) -> Source | None:
        """The configured index that replaces PyPI, if any."""
        return next((s for s in self.pypi if s.kind == "index" and s.default), None)

    @property
    def extra_indexes(self) -> tuple[Source, ...]:
        """The configured extra indexes, searched before the default one."""
        return tuple(s for s in self.pypi if s.kind == "index" and not s.default)

    @property
    def find_links(self) -> tuple[Source, ...]:
        """The configured find-links locations."""
        return tuple(s for s in self.pypi if s.kind == "find-links")


# --- pip -----------------------------------------------------------------------------------------


def _split_list(value: str) -> list[str]:
    return [v for v in value.replace(",", " ").split() if v]


def _bad(path: str, problem: str, fix: str) -> InputError:
    return InputError(f"{path}: {redact(problem)}", fix=fix)


def _read_ini(path: Path, label: str) -> configparser.RawConfigParser | None:
    """A pip.conf, read through the bounded reader; None when there is none."""
    from dlsetup.reading import is_regular_file, read_text

    if not is_regular_file(path):
        return None
    text = read_text(path, what="pip configuration file", max_bytes=MAX_CONFIG_BYTES)
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text, source=label)
    except configparser.Error as exc:
        raise _bad(
            label,
            f"is not a pip configuration file: {exc}",
            "fix the file (INI: a [global] section with index-url = URL), or move it away",
        ) from exc
    return parser


def _pip_files(places: Places) -> list[Path]:
    env_file = places.env.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    files = [d / "pip" / "pip.conf" for d in places.xdg_config_dirs()]
    files.append(places.system("/etc/pip.conf"))
    if not (env_file and Path(env_file).exists()):
        files += [places.home / ".pip" / "pip.conf", places.xdg_config_home() / "pip" / "pip.conf"]
    if places.prefix is not None:
        files.append(places.prefix / "pip.conf")
    if env_file:
        files.append(Path(env_file))
    return files


_PIP_KEYS = {"index-url": "index", "extra-index-url": "index", "find-links": "find-links"}


def _pip_settings(places: Places) -> dict[str, tuple[str, str]]:
    """pip's ``index-url``, ``extra-index-url``, ``find-links``: value and origin, last wins."""
    return pip_settings(places, tuple(_PIP_KEYS))


def pip_settings(places: Places, keys: Iterable[str]) -> dict[str, tuple[str, str]]:
    """pip's settings ``keys`` (``cert``, ``trusted-host``, ...) in pip's files and ``PIP_*``
    variables, in pip's order: value and origin, the last place wins.

    Raises:
        InputError: a configuration file pip itself could not read (named, with the fix).
    """
    wanted = set(keys)
    found: dict[str, tuple[str, str]] = {}
    for path in _pip_files(places):
        label = places.label(path)
        parser = _read_ini(path, label)
        if parser is None:
            continue
        for section in ("global", "install"):
            if not parser.has_section(section):
                continue
            for key, value in parser.items(section):
                name = key.replace("_", "-")
                if name in wanted:
                    found[name] = (value, f"pip config {label} [{section}] {name}")
    for name in sorted(wanted):
        var = "PIP_" + name.upper().replace("-", "_")
        if places.env.get(var):
            found[name] = (places.env[var], var)
    return found


def pip_sources(places: Places | None = None) -> tuple[Source, ...]:
    """The indexes and find-links pip's configuration and environment set, with their origins.

    Raises:
        InputError: a configuration file pip itself could not read (named, with the fix).
    """
    places = places or Places.here()
    found = _pip_settings(places)
    sources: list[Source] = []
    no_index = places.env.get("PIP_NO_INDEX", "").lower() in ("1", "true", "yes", "on")
    if "index-url" in found and not no_index:
        value, origin = found["index-url"]
        sources += [Source("index", url, origin, default=True) for url in _split_list(value)[:1]]
    if "extra-index-url" in found and not no_index:
        value, origin = found["extra-index-url"]
        sources += [Source("index", url, origin) for url in _split_list(value)]
    if "find-links" in found:
        value, origin = found["find-links"]
        sources += [Source("find-links", url, origin) for url in _split_list(value)]
    return tuple(sources)


# --- uv ------------------------------------------------------------------------------------------


def _load_toml(path: Path, label: str, what: str) -> dict[str, Any] | None:
    from dlsetup.reading import is_regular_file, load_toml

    if not is_regular_file(path):
        return None
    return load_toml(path, what=what, max_bytes=MAX_CONFIG_BYTES)


def _uv_files(places: Places) -> list[Path]:
    return uv_config_files(places)


def uv_config_files(places: Places) -> list[Path]:
    """uv's configuration files, in uv's order (a later one overrides an earlier one, key by
    key): the system files, then the user's; ``UV_CONFIG_FILE`` alone; none with
    ``UV_NO_CONFIG``. Some may not exist."""
    if places.env.get("UV_NO_CONFIG"):
        return []
    if places.env.get("UV_CONFIG_FILE"):
        return [Path(places.env["UV_CONFIG_FILE"])]
    system = [d / "uv" / "uv.toml" for d in reversed(places.xdg_config_dirs())]
    system.append(places.system("/etc/uv/uv.toml"))
    return [*dict.fromkeys(system), places.xdg_config_home() / "uv" / "uv.toml"]


def _strings(value: Any, label: str, key: str) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _bad(
            label, f"{key} is {value!r}, not a URL or a list of URLs", f"write {key} = [URL]"
        )
    return list(values)


def _uv_table(table: Mapping[str, Any], label: str, where: str) -> dict[str, list[Source]]:
    """One uv.toml table's (top level or ``[pip]``) sources, by setting."""
    found: dict[str, list[Source]] = {}
    for key, kind, default in (
        ("index-url", "index", True),
        ("extra-index-url", "index", False),
        ("find-links", "find-links", False),
    ):
        if key in table:
            origin = f"uv config {label} {where}{key}"
            urls = _strings(table[key], label, where + key)
            found[key] = [Source(kind, u, origin, default=default) for u in urls]
    indexes = table.get("index", [])
    if indexes:
        if not isinstance(indexes, list) or not all(isinstance(i, dict) for i in indexes):
            raise _bad(label, f"{where}index is not a list of tables", "write [[index]] url = URL")
        entries = []
        for entry in indexes:
            url = entry.get("url")
            if not isinstance(url, str):
                raise _bad(label, f"an [[index]] has no url: {entry!r}", "give each url = URL")
            name = f" {entry['name']}" if isinstance(entry.get("name"), str) else ""
            origin = f"uv config {label} [[index]]{name}"
            entries.append(Source("index", url, origin, default=entry.get("default") is True))
        found["index"] = entries
    return found


def uv_sources(places: Places | None = None) -> tuple[Source, ...]:
    """The indexes and find-links uv's configuration files and environment set.

    Raises:
        InputError: a uv.toml that is not TOML, or whose index settings are not URLs.
    """
    places = places or Places.here()
    found: dict[str, list[Source]] = {}
    for path in _uv_files(places):
        label = places.label(path)
        data = _load_toml(path, label, "uv configuration file")
        if data is None:
            continue
        found.update(_uv_table(data, label, ""))
        pip = data.get("pip")
        if isinstance(pip, dict):
            found.update(_uv_table(pip, label, "[pip] "))
    env = places.env
    for var, key, kind, default in (
        ("UV_INDEX_URL", "index-url", "index", True),
        ("UV_DEFAULT_INDEX", "index-url", "index", True),
        ("UV_EXTRA_INDEX_URL", "extra-index-url", "index", False),
        ("UV_INDEX", "index", "index", False),
        ("UV_FIND_LINKS", "find-links", "find-links", False),
    ):
        if env.get(var):
            urls = [
                u.partition("=")[2] if "=" in u.split("://")[0] else u for u in env[var].split()
            ]
            found[key] = [
                Source(kind, u, var, default=default) for u in _split_list(" ".join(urls))
            ]
    ordered = [
        s
        for key in ("index", "index-url", "extra-index-url", "find-links")
        for s in found.get(key, [])
    ]
    defaults = [s for s in ordered if s.kind == "index" and s.default]
    rest = [s for s in ordered if not (s.kind == "index" and s.default)]
    return tuple(
        defaults[-1:]
        + [s for s in rest if s.kind == "index"]
        + [s for s in rest if s.kind != "index"]
    )


def pypi_sources(places: Places | None = None) -> tuple[Source, ...]:
    """uv's sources, then pip's: one default index (uv's wins), the extra indexes, the find-links,
    each URL once."""
    places = places or Places.here()
    both = uv_sources(places) + pip_sources(places)
    default = next((s for s in both if s.kind == "index" and s.default), None)
    seen: set[str] = set() if default is None else {default.url.rstrip("/")}
    ordered: list[Source] = [] if default is None else [default]
    for kind in ("index", "find-links"):
        for source in both:
            key = source.url.rstrip("/")
            if source.kind == kind and not source.default and key not in seen:
                seen.add(key)
                ordered.append(source)
    return tuple(ordered)


# --- conda and pixi -----------------------------------------------------------------------------


def _condarc_files(places: Places) -> list[Path]:
    files = [
        places.system("/etc/conda/.condarc"),
        places.system("/etc/conda/condarc"),
        places.xdg_config_home() / "conda" / ".condarc",
        places.home / ".conda" / ".condarc",
        places.home / ".condarc",
    ]
    if places.env.get("CONDARC"):
        files.append(Path(places.env["CONDARC"]))
    return list(dict.fromkeys(files))


def _channel_list(data: Mapping[str, Any], key: str, label: str) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    return _strings(value, label, key)


def _condarc_parts(data: Mapping[str, Any], label: str, parts: dict[str, Any]) -> None:
    """Merge one .condarc's channel settings into ``parts`` (a later file wins)."""
    channels = [
        Source("channel", c, f"{label} channels") for c in _channel_list(data, "channels", label)
    ]
    parts["channels"] = channels + [
        c for c in parts["channels"] if c.url not in {x.url for x in channels}
    ]
    alias = data.get("channel_alias")
    if alias is not None:
        if not isinstance(alias, str):
            raise _bad(label, f"channel_alias is {alias!r}, not a URL", "write channel_alias: URL")
        parts["alias"] = Source("channel-alias", alias, f"{label} channel_alias")
    custom = data.get("custom_channels")
    if custom is not None:
        if not isinstance(custom, dict) or not all(isinstance(v, str) for v in custom.values()):
            raise _bad(
                label, f"custom_channels is {custom!r}", "write custom_channels: {NAME: URL}"
            )
        for name, url in custom.items():
            parts["custom"][str(name)] = Source(
                "channel", url, f"{label} custom_channels.{name}", name=str(name)
            )
    if "default_channels" in data:
        urls = _channel_list(data, "default_channels", label)
        parts["defaults"] = [
            Source("channel", u, f"{label} default_channels", name="defaults") for u in urls
        ]


def _pixi_mirrors(places: Places) -> list[Source]:
    home = places.env.get("PIXI_HOME")
    files = [
        places.system("/etc/pixi/config.toml"),
        places.xdg_config_home() / "pixi" / "config.toml",
        (Path(home) if home else places.home / ".pixi") / "config.toml",
    ]
    mirrors: dict[str, list[Source]] = {}
    for path in dict.fromkeys(files):
        label = places.label(path)
        data = _load_toml(path, label, "pixi configuration file")
        table = (data or {}).get("mirrors")
        if table is None:
            continue
        if not isinstance(table, dict):
            raise _bad(label, f"[mirrors] is {table!r}", 'write [mirrors] "URL" = ["MIRROR"]')
        for original, urls in table.items():
            mirrors[str(original)] = [
                Source("mirror", u, f"pixi config {label} [mirrors]", name=str(original))
                for u in _strings(urls, label, f"mirrors.{original}")
            ]
    return [s for group in mirrors.values() for s in group]


def conda_settings(places: Places | None = None) -> CondaSettings:
    """The channel settings of conda's ``.condarc`` files and pixi's mirrors.

    Raises:
        InputError: a file that is not YAML/TOML, or a setting that is not a URL (named).
    """
    from dlsetup.reading import is_regular_file, load_yaml

    places = places or Places.here()
    parts: dict[str, Any] = {"channels": [], "alias": None, "custom": {}, "defaults": []}
    for path in _condarc_files(places):
        if not is_regular_file(path):
            continue
        label = places.label(path)
        data = load_yaml(path, what="conda configuration file", max_bytes=MAX_CONFIG_BYTES)
        if data is None:
            continue
        if not isinstance(data, dict):
            raise _bad(
                label, "is not a mapping of settings", "write channel_alias: URL and the like"
            )
        _condarc_parts(data, label, parts)
    return CondaSettings(
        channels=tuple(parts["channels"]),
        channel_alias=parts["alias"],
        custom_channels=tuple(parts["custom"].values()),
        default_channels=tuple(parts["defaults"]),
        mirrors=tuple(_pixi_mirrors(places)),
    )


def configured_sources(places: Places | None = None, *, conda: bool = True) -> ConfiguredSources:
    """Every source configured here: PyPI's (:func:`pypi_sources`) and, when ``conda``, the
    channel settings (:func:`conda_settings`)."""
    places = places or Places.here()
    return ConfiguredSources(
        pypi=pypi_sources(places), conda=conda_settings(places) if conda else CondaSettings()
    )


def channel_sources(channel: str, settings: CondaSettings) -> tuple[Source, ...]:
    """Where the channel ``channel`` (a name or a URL) is fetched from, with why.

    A name goes through ``custom_channels`` (``URL/NAME``), ``defaults`` through
    ``default_channels``, any other name through ``channel_alias`` (``ALIAS/NAME``; conda's
    ``https://conda.anaconda.org`` where none is set, origin ``conda's default``). A URL stays as
    it is. Then a pixi mirror replaces the prefix it stands in for (the first mirror of a prefix).
    """
    resolved: tuple[Source, ...]
    if "://" in channel or channel.startswith(("/", "./", "~")):
        resolved = (Source("channel", channel, "as given"),)
    elif channel == "defaults" and settings.default_channels:
        resolved = settings.default_channels
    else:
        custom = next((c for c in settings.custom_channels if c.name == channel), None)
        if custom is not None:
            url = f"{custom.url.rstrip('/')}/{channel}"
            resolved = (Source("channel", url, custom.origin, name=channel),)
        elif settings.channel_alias is not None:
            alias = settings.channel_alias
            url = f"{alias.url.rstrip('/')}/{channel}"
            resolved = (Source("channel", url, alias.origin, name=channel),)
        else:
            resolved = (
                Source("channel", f"{CONDA_ALIAS}/{channel}", "conda's default", name=channel),
            )
    return tuple(_mirrored(s, settings.mirrors) for s in resolved)


def _mirrored(source: Source, mirrors: Iterable[Source]) -> Source:
    for mirror in mirrors:
        prefix = mirror.name.rstrip("/")
        if source.url == prefix or source.url.startswith(prefix + "/"):
            url = mirror.url.rstrip("/") + source.url[len(prefix) :]
            return Source("channel", url, f"{mirror.origin} for {prefix}", name=source.name)
    return source
