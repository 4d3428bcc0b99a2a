"""The user's uv (and pip) settings that are not package sources, forwarded to every uv dlsetup runs.

dlsetup runs uv with ``--no-config`` and without the source and resolver variables
(:data:`dlsetup.envs.pypi.uv.UV_INPUT_VARIABLES`), so that only the sources it decided reach uv.
That also hid the settings users need to reach those sources at all, above all behind a company
network: the system's certificate store (a company CA), a proxy, keyring credentials, a host
with its own certificate, a cache on another disk, timeouts. This module reads them where uv
reads them (the same files and order as :func:`dlsetup.envs.sources.uv_config_files`:
``UV_CONFIG_FILE``, else the system and user ``uv.toml``; none with ``UV_NO_CONFIG``) and hands
them to uv as the environment variables uv reads (uv's docs: variables override configuration
files, options override variables; ``--no-config`` skips only the files). A variable the user set
for the same setting is left as it is, and wins, as it would for uv.

Forwarded (:data:`FORWARDED`, an allow-list): settings of how uv reaches and stores, not of what
it resolves. pip's ``cert``, ``client-cert``, ``trusted-host``, ``timeout`` and
``keyring-provider`` (``pip.conf`` or ``PIP_*``) are forwarded too, where no uv setting gave the
same: dlsetup takes indexes from pip's configuration, and those indexes may need them.

Not forwarded (:data:`WITHHELD`): sources (dlsetup decides them, :mod:`dlsetup.envs.sources`),
and what changes what resolves or how it is built or installed (``resolution``, ``prerelease``,
``exclude-newer``, ``torch-backend``, ``no-build-isolation``, ``link-mode``: a ``symlink`` into a
private cache removed afterwards would leave a broken venv). A key dlsetup does not know is not
forwarded either, with one line saying so.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    from dlsetup.envs.sources import Places

#: uv.toml keys forwarded, and the variable uv reads for each (``uv help``, uv 0.13)
FORWARDED = {
    "native-tls": "UV_SYSTEM_CERTS",  # uv >= 0.13's name; native-tls is its deprecated alias
    "system-certs": "UV_SYSTEM_CERTS",
    "offline": "UV_OFFLINE",
    "no-cache": "UV_NO_CACHE",
    "cache-dir": "UV_CACHE_DIR",
    "concurrent-downloads": "UV_CONCURRENT_DOWNLOADS",
    "concurrent-builds": "UV_CONCURRENT_BUILDS",
    "concurrent-installs": "UV_CONCURRENT_INSTALLS",
    "allow-insecure-host": "UV_INSECURE_HOST",
    "keyring-provider": "UV_KEYRING_PROVIDER",
    "http-proxy": "HTTP_PROXY",
    "https-proxy": "HTTPS_PROXY",
    "no-proxy": "NO_PROXY",
    "python-downloads": "UV_PYTHON_DOWNLOADS",
    "compile-bytecode": "UV_COMPILE_BYTECODE",
}

#: pip's settings forwarded where uv's configuration gives none for the same variable
PIP_FORWARDED = {
    "cert": "SSL_CERT_FILE",
    "client-cert": "SSL_CLIENT_CERT",
    "trusted-host": "UV_INSECURE_HOST",
    "timeout": "UV_HTTP_TIMEOUT",
    "keyring-provider": "UV_KEYRING_PROVIDER",
}

#: every variable a forwarded setting is given as, and ``UV_HTTP_TIMEOUT`` and ``UV_NATIVE_TLS``
#: (no uv.toml key; an older name): the user's own values of these reach uv as they are
SETTING_VARIABLES = frozenset(
    {*FORWARDED.values(), *PIP_FORWARDED.values(), "UV_HTTP_TIMEOUT", "UV_NATIVE_TLS"}
)

#: uv.toml keys that are sources (read as such by :mod:`dlsetup.envs.sources`) or tables
SOURCE_KEYS = frozenset(
    {"index", "index-url", "extra-index-url", "find-links", "no-index", "pip", "proxy-index"}
)

#: uv.toml keys known and not forwarded: they change what resolves, or what is built or installed
WITHHELD = frozenset(
    {
        "index-strategy", "resolution", "prerelease", "prerelease-package", "fork-strategy",
        "exclude-newer", "exclude-newer-package", "torch-backend", "no-build-isolation",
        "no-build-isolation-package", "no-build", "no-build-package", "no-binary",
        "no-binary-package", "config-settings", "config-settings-package",
        "extra-build-dependencies", "extra-build-variables", "dependency-metadata",
        "require-build-hashes", "link-mode", "no-sources", "no-sources-package", "upgrade",
        "upgrade-package", "reinstall", "reinstall-package", "python-preference",
        "python-install-mirror", "pypy-install-mirror", "graalpy-install-mirror",
        "pyodide-install-mirror", "python-downloads-json-url", "required-version", "preview",
        "preview-features", "override-dependencies", "constraint-dependencies",
        "build-constraint-dependencies", "exclude-dependencies", "environments",
        "required-environments", "minimum-libc-version", "cache-keys", "publish-url",
        "trusted-publishing", "check-url", "add-bounds", "audit", "conflicts", "workspace",
        "sources", "managed", "package", "default-groups", "dependency-groups",
        "dev-dependencies", "build-backend", "python-version", "python-platform", "python",
        "system", "break-system-packages", "target", "prefix", "strict", "universal",
        "generate-hashes", "annotation-style", "output-file", "no-strip-extras",
        "no-strip-markers", "no-annotate", "no-header", "custom-compile-command", "emit-index-url",
        "emit-find-links", "emit-build-options", "emit-marker-expression",
        "emit-index-annotation", "no-emit-package", "only-binary", "no-deps", "require-hashes",
        "verify-hashes", "extra", "all-extras", "no-extra", "group",
    }
)  # fmt: skip

#: the pip keys uv's ``[pip]`` table may hold that are forwarded like the top-level ones
PIP_TABLE_FORWARDED = ("keyring-provider", "allow-insecure-host", "compile-bytecode")


@dataclass(frozen=True)
class UvSetting:
    """One setting forwarded to uv.

    Attributes:
        key: the key as the user wrote it (``native-tls``, ``[pip] keyring-provider``, ``cert``).
        variable: the environment variable uv gets it as (``UV_SYSTEM_CERTS``).
        value: the value uv gets (a list joined by spaces, a boolean as ``true``/``false``).
        origin: where it was set (``uv config ~/.config/uv/uv.toml``, ``pip config
            /etc/pip.conf [global]``, ``PIP_CERT``).
        overridden_by: the variable already set in the environment that uv takes instead (as
            uv would: a variable overrides a file); empty when this value reaches uv.
    """

    key: str
    variable: str
    value: str
    origin: str
    overridden_by: str = ""

    def line(self) -> str:
        """What ``lock`` says about it: credentials masked."""
        from dlsetup.envs.credentials import redact

        shown = redact(self.value)
        if self.overridden_by:
            return (
                f"{self.key} = {shown} ({self.origin}) not forwarded: ${self.overridden_by} "
                "is set and uv takes it"
            )
        return f"{self.key} = {shown} ({self.origin}) forwarded as {self.variable}"


@dataclass(frozen=True)
class UvSettings:
    """The user's settings for uv that dlsetup forwards, and the ones it does not.

    Attributes:
        forwarded: each setting found, in the order read; those with ``overridden_by`` do not
            reach uv (a variable the user set does).
        not_forwarded: one line per uv.toml key left out (a source is not listed here: the
            lock's ``Source:`` lines name what was taken from it).
    """

    forwarded: tuple[UvSetting, ...] = ()
    not_forwarded: tuple[str, ...] = ()

    def variables(self) -> dict[str, str]:
        """The variables to add to uv's environment."""
        return {s.variable: s.value for s in self.forwarded if not s.overridden_by}

    def lines(self) -> list[str]:
        """One line per setting found (forwarded, overridden, or left out), for ``lock``."""
        return [s.line() for s in self.forwarded] + list(self.not_forwarded)


#: The TOML type uv's settings reference gives each forwarded key (uv refuses any other)
_KINDS: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(
        ("native-tls", "system-certs", "offline", "no-cache", "compile-bytecode"), (bool,)
    ),
    **dict.fromkeys(("concurrent-downloads", "concurrent-builds", "concurrent-installs"), (int,)),
    **dict.fromkeys(("allow-insecure-host", "no-proxy"), (str, list)),
}
_KIND_NAMES = {bool: "a boolean", int: "a whole number", str: "a string", list: "a list of strings"}


def _value(value: Any, label: str, key: str) -> str:
    """A TOML value as uv reads it from a variable: a list joined by spaces, ``true``/``false``;
    a value of another type than uv takes for ``key`` is refused (``cache-dir = 5`` would make a
    cache directory named 5 where dlsetup runs)."""
    from dlsetup.errors import InputError

    kinds = _KINDS.get(key.rpartition(".")[2], (str,))
    wrong_type = isinstance(value, bool) != (bool in kinds) or not isinstance(value, kinds)
    if not wrong_type:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | str):
            return str(value)
        if all(isinstance(v, str) for v in value):
            return " ".join(value)
    raise InputError(
        f"{label}: {key} is {value!r}, not {' or '.join(_KIND_NAMES[k] for k in kinds)}",
        fix=f"write {key} as uv's settings reference describes it, or remove it",
    )


def _path_value(value: str, home: Path) -> str:
    if value == "~" or value.startswith("~/"):
        return str(home / value[2:]) if value != "~" else str(home)
    return value


def _table_settings(
    table: Mapping[str, Any], label: str, where: str, home: Path
) -> tuple[dict[str, UvSetting], list[str]]:
    """One uv.toml table's forwarded settings (by variable) and its lines for keys left out."""
    found: dict[str, UvSetting] = {}
    left: list[str] = []
    names = FORWARDED if not where else {k: FORWARDED[k] for k in PIP_TABLE_FORWARDED}
    for key, raw in table.items():
        if key in names:
            value = _value(raw, label, where + key)
            if key == "cache-dir":
                value = _path_value(value, home)
            elif key == "no-proxy" and isinstance(raw, list):
                value = ",".join(raw)  # NO_PROXY is a comma-separated list
            variable = names[key]
            found[variable] = UvSetting(where + key, variable, value, f"uv config {label}")
        elif key in SOURCE_KEYS or (where and key in FORWARDED) or key in _PIP_TABLE_SOURCES:
            continue
        elif key in WITHHELD:
            left.append(
                f"{where}{key} (uv config {label}) not forwarded: it changes what uv resolves, "
                "builds or installs, which the lock decides"
            )
        else:
            left.append(
                f"{where}{key} (uv config {label}) not forwarded: not a setting dlsetup knows"
            )
    return found, left


#: ``[pip]`` keys that are sources (read by :mod:`dlsetup.envs.sources`), never forwarded
_PIP_TABLE_SOURCES = frozenset({"index-url", "extra-index-url", "find-links", "no-index", "index"})


def _uv_file_settings(places: Places) -> tuple[dict[str, UvSetting], list[str]]:
    """The forwarded settings of uv's configuration files (a later file wins, key by key)."""
    from dlsetup.envs.sources import MAX_CONFIG_BYTES, uv_config_files
    from dlsetup.reading import is_regular_file, load_toml

    found: dict[str, UvSetting] = {}
    left: list[str] = []
    for path in uv_config_files(places):
        if not is_regular_file(path):
            continue
        label = places.label(path)
        data = load_toml(path, what="uv configuration file", max_bytes=MAX_CONFIG_BYTES)
        top, top_left = _table_settings(data, label, "", places.home)
        found.update(top)
        left += top_left
        pip = data.get("pip")
        if isinstance(pip, dict):
            inner, inner_left = _table_settings(pip, label, "[pip] ", places.home)
            found.update(inner)
            left += inner_left
    return found, left


def _pip_file_settings(places: Places, taken: Iterable[str]) -> dict[str, UvSetting]:
    """pip's forwarded settings, for the variables uv's configuration gives no value."""
    from dlsetup.envs.sources import pip_settings

    found: dict[str, UvSetting] = {}
    skip = set(taken)
    for key, (value, origin) in pip_settings(places, PIP_FORWARDED).items():
        variable = PIP_FORWARDED[key]
        if variable in skip:
            continue
        if key == "keyring-provider" and value not in ("subprocess", "disabled"):
            continue  # pip's import/auto: uv has only its subprocess provider
        given = " ".join(value.replace(",", " ").split()) if key == "trusted-host" else value
        where = origin.rpartition(" ")[0] if origin.startswith("pip config ") else origin
        found[variable] = UvSetting(key, variable, given, where)
    return found


def uv_settings(places: Places | None = None) -> UvSettings:
    """The user's uv settings (and pip's few) that dlsetup forwards to uv, read as uv reads them.

    Args:
        places: where to look (:class:`dlsetup.envs.sources.Places`; default: here).

    Raises:
        InputError: a configuration file that is not TOML/INI, or a value of the wrong type
            (named, with the fix).
    """
    from dlsetup.envs.sources import Places

    places = places or Places.here()
    found, left = _uv_file_settings(places)
    found.update(_pip_file_settings(places, found))
    settings = [_against(setting, places.env) for setting in found.values()]
    return UvSettings(forwarded=tuple(settings), not_forwarded=tuple(left))


def _against(setting: UvSetting, env: Mapping[str, str]) -> UvSetting:
    """``setting``, marked overridden where ``env`` sets its variable (or that variable's older
    name) already: uv takes a variable over a file."""
    names = (
        setting.variable,
        *((_UV_ALIASES[setting.variable],) if setting.variable in _UV_ALIASES else ()),
    )
    given = next((name for name in names if env.get(name)), "")
    if not given:
        return setting
    return UvSetting(setting.key, setting.variable, setting.value, setting.origin, given)


#: a variable uv also reads under another name (the older one)
_UV_ALIASES = {"UV_SYSTEM_CERTS": "UV_NATIVE_TLS"}


def forwarded_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the user's forwarded settings added
    (:func:`uv_settings`) where ``base`` does not set them already."""
    env = dict(os.environ if base is None else base)
    for variable, value in uv_settings().variables().items():
        env.setdefault(variable, value)
    return env


def _insecure(entry: str, host: str, port: int | None, scheme: str) -> bool:
    """Whether an ``allow-insecure-host`` entry (``host``, ``host:port`` or a URL) covers this
    host, as uv matches it."""
    from urllib.parse import urlsplit

    if "://" in entry:
        parts = urlsplit(entry)
        same_port = parts.port is None or parts.port == port
        return parts.scheme == scheme and parts.hostname == host and same_port
    name, _, given = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
    return name == host and (not given or given == str(port))


def tls_context(url: str, env: Mapping[str, str] | None = None) -> ssl.SSLContext | None:
    """The TLS trust uv gets for ``url`` from the forwarded settings (and the variables set, which
    win), for dlsetup's own probe of the same URL: no verification where ``allow-insecure-host``
    (or pip's ``trusted-host``) covers its host; ``cert``'s CA file in place of the default
    trust; ``client-cert``'s certificate. None where nothing differs from Python's defaults
    (which take ``SSL_CERT_FILE`` and the system store already).

    Raises:
        InputError: a uv or pip configuration file that cannot be read.
        OSError: a CA or client certificate file that cannot be read (``ssl.SSLError`` too).
    """
    import ssl
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "https":
        return None
    env = os.environ if env is None else env
    forwarded = uv_settings().variables()

    def get(name: str) -> str:
        return env.get(name) or forwarded.get(name, "")

    hosts = get("UV_INSECURE_HOST").split()
    if any(_insecure(h, parts.hostname or "", parts.port, parts.scheme) for h in hosts):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = None if env.get("SSL_CERT_FILE") else forwarded.get("SSL_CERT_FILE")
    client = get("SSL_CLIENT_CERT")
    if not cafile and not client:
        return None
    context = ssl.create_default_context(cafile=cafile or None)
    if client:
        context.load_cert_chain(client)
    return context
