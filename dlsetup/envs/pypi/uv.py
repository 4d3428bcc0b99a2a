"""The one place that finds the uv executable (lock's ``pip:`` resolution, create's PyPI phase and
the venv backend all run the same uv)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from dlsetup.errors import MissingToolError

#: environment variable naming another uv (a system-wide one, a wrapper)
UV_ENV = "DLSETUP_UV"

#: the caller's uv and pip settings that name package sources (an index, find-links, PyTorch's
#: index through ``UV_TORCH_BACKEND``, a config file that may hold them) or change what a resolve
#: or build takes: never passed to a uv dlsetup runs, which gets exactly the sources dlsetup
#: decided (``--index-url`` and ``--torch-index-url``, else the configured ones dlsetup read with
#: their origins, :mod:`dlsetup.envs.sources`), with ``--no-config``
UV_INPUT_VARIABLES = (
    "UV_INDEX", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS",
    "UV_NO_INDEX", "UV_INDEX_STRATEGY", "UV_TORCH_BACKEND", "UV_CONFIG_FILE", "UV_CONSTRAINT",
    "UV_OVERRIDE", "UV_EXCLUDE", "UV_BUILD_CONSTRAINT", "UV_PRERELEASE", "UV_RESOLUTION",
    "UV_EXCLUDE_NEWER", "UV_PYTHON", "UV_NO_BINARY", "UV_ONLY_BINARY", "UV_NO_BUILD",
    "UV_NO_BUILD_ISOLATION", "UV_NO_BUILD_ISOLATION_PACKAGE", "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_CONFIG_FILE",
    "PIP_NO_BUILD_ISOLATION",
)  # fmt: skip


def uv_environment() -> dict[str, str]:
    """This process's environment without :data:`UV_INPUT_VARIABLES`: for a uv that gets its
    sources from dlsetup (on its command line or in a private config file) and ``--no-config``,
    so neither a ``UV_INDEX`` nor a ``uv.toml`` adds an index the user did not choose for this
    run, and nothing turns the build isolation of ``--allow-build`` off. Other variables (proxies,
    certificates, ``UV_SYSTEM_CERTS``, ``UV_CACHE_DIR``, ``UV_KEYRING_PROVIDER``) still reach uv,
    and the user's uv.toml (and pip.conf) settings that are not sources are added as the
    variables uv reads for them, where the environment does not set them already
    (:mod:`dlsetup.envs.uv_settings`).

    Raises:
        InputError: a uv or pip configuration file that cannot be read (named, with the fix).
    """
    from dlsetup.envs.uv_settings import forwarded_environment

    return forwarded_environment(
        {k: v for k, v in os.environ.items() if k not in UV_INPUT_VARIABLES}
    )


def forwarded_setting_names() -> tuple[str, ...]:
    """Each of the user's uv (and pip) settings that reaches uv (:func:`uv_environment`), by
    name and the variable uv gets it as: ``cache-dir as UV_CACHE_DIR``. Never its value: a
    proxy's URL may hold a password. A setting the user's own variable takes over is not one.

    Raises:
        InputError: a uv or pip configuration file that cannot be read (named, with the fix).
    """
    from dlsetup.envs.uv_settings import uv_settings

    return tuple(f"{s.key} as {s.variable}" for s in uv_settings().forwarded if not s.overridden_by)


def uv_binary() -> str:
    """The uv executable: ``$DLSETUP_UV`` when set, else the ``uv`` package's (a dependency of
    dlsetup), else ``uv`` on PATH.

    Raises:
        MissingToolError: none of them is there.
    """
    given = os.environ.get(UV_ENV)
    if given:
        return given
    try:
        import uv

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found is None:
        raise MissingToolError(
            "uv (the resolver and installer dlsetup uses for PyPI packages) was not found: "
            f"neither the uv package, ${UV_ENV} nor a uv on PATH",
            fix="pip install uv (dlsetup depends on it: reinstalling dlsetup brings it back)",
        )
    return found


@contextlib.contextmanager
def uv_cache(urls: Iterable[str | None], cache_dir: Path | None = None) -> Iterator[Path | None]:
    """uv's cache for a run over ``urls``: ``cache_dir`` (``None``: uv's own), or, when an index or
    file URL carries credentials (``${VAR}`` placeholders, or values written in it), a private
    directory (mode 0700) removed afterwards: uv's cache keeps the index URL it fetched, a query
    token included, in its ``simple-v*/index`` entries. Pass it as ``--cache-dir`` or
    ``UV_CACHE_DIR`` (which then also overrides the user's ``UV_CACHE_DIR``)."""
    if not any(has_credentials(url) for url in urls):
        yield cache_dir
        return
    private = Path(tempfile.mkdtemp(prefix="dlsetup-uv-cache-"))  # 0700, like every mkdtemp
    try:
        yield private
    finally:
        shutil.rmtree(private, ignore_errors=True)


def has_credentials(url: str | None) -> bool:
    """Whether ``url`` names credentials: ``${VAR}`` placeholders, or values written in it."""
    from dlsetup.envs.credentials import has_literal_auth, placeholders

    return bool(url) and bool(placeholders(url or "") or has_literal_auth(url or ""))


def index_config(
    path: Path, index_url: str, extra: Iterable[str] = (), find_links: Iterable[str] = ()
) -> Path:
    """Write a uv config file (mode 0600) naming the indexes, ``${VAR}`` filled in, for
    ``--config-file``: credentials reach uv in a private file, never on its command line (which
    any user of the machine can read). ``extra`` indexes are searched first, as ``--index``
    before ``--default-index``; ``find_links`` are directories or pages of wheels."""
    import json

    from dlsetup.envs.credentials import expand_auth

    lines = ["[pip]", f"index-url = {json.dumps(expand_auth(index_url))}"]
    extras = [json.dumps(expand_auth(url)) for url in extra if url]
    if extras:
        lines.append(f"extra-index-url = [{', '.join(extras)}]")
    links = [json.dumps(expand_auth(url)) for url in find_links if url]
    if links:
        lines.append(f"find-links = [{', '.join(links)}]")
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def index_args(
    default_index: str,
    indexes: Sequence[str] = (),
    find_links: Sequence[str] = (),
    *,
    workdir: Path,
) -> list[str]:
    """uv's arguments for a resolve over these sources: ``indexes`` searched first, in order (the
    PyTorch index, then the configured extra indexes), ``find_links`` beside them, then
    ``default_index``. Where any URL names credentials (written in it, or ``${VAR}``), they go
    into a private config file (:func:`index_config`) instead: never onto uv's command line,
    which any user of the machine can read."""
    wanted = [u for u in indexes if u]
    links = [u for u in find_links if u]
    if any(has_credentials(u) for u in (default_index, *wanted, *links)):
        config = index_config(workdir / "uv.toml", default_index, wanted, links)
        return ["--config-file", str(config)]
    args: list[str] = []
    for url in wanted:
        args += ["--index", url]
    for url in links:
        args += ["--find-links", url]
    return [*args, "--default-index", default_index]
