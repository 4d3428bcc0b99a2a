"""Reachability first: probe each source once, with a short timeout, before anything is resolved;
where PyTorch's index is out of reach, fall back in a stated order.

uv retries a source it cannot reach three times and says so after half a minute (a DNS failure for
PyTorch's index took 31 s). :func:`probe_all` asks every source at once, in threads, one request
each (a ``GET`` of the index root, the channel's ``noarch/repodata.json``, or ``os.stat`` of a
``file://`` directory) and waits at most ``timeout_s`` for all of them together.

The fallback order for torch (:data:`FALLBACK_ORDER`): PyTorch's index for the chosen variant,
then the indexes and find-links the user configured (:mod:`dlsetup.envs.sources`), in their
order, then the default index (PyPI, or the configured one). A CUDA build from PyPI is taken only
where the knowledge base's ``pypi_default`` variant of the release fits the driver and every GPU;
where no source is left, :func:`choose_torch_sources` raises naming every source tried and the
one option that would work, ``--torch-index-url`` with a mirror of PyTorch's index.
Standard library only (urllib, threading).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from dlsetup.envs.sources import Places, Source
from dlsetup.errors import SolveError

if TYPE_CHECKING:
    from dlsetup.envs.variant import VariantChoice

#: seconds one probe may take; all of them run at once, so this is also the wait for all of them
PROBE_TIMEOUT_S = 3.0
#: the fallback order, as plans and errors state it
FALLBACK_ORDER = (
    "PyTorch's index for the variant, then the configured indexes and find-links (uv's, then "
    "pip's), then the default index"
)


@dataclass(frozen=True)
class Reach:
    """What one probe found.

    Attributes:
        source: the source probed.
        reachable: whether it answered (any HTTP answer but 404 and 5xx; a directory that exists).
        reason: why not, in words (``connection refused``, ``no answer within 3.0 s``,
            ``name not resolved``, ``HTTP 404``, ``directory /x does not exist``); empty when
            reachable.
        seconds: how long the probe took.
    """

    source: Source
    reachable: bool
    reason: str = ""
    seconds: float = 0.0

    def display(self) -> str:
        """``URL (origin): reachable`` or ``URL (origin): out of reach (reason)``."""
        state = "reachable" if self.reachable else f"out of reach ({self.reason})"
        return f"{self.source.display()}: {state}"


def _local_path(url: str) -> Path | None:
    """The directory a ``file://`` URL or a plain path names; None for a network URL."""
    if url.startswith("file://"):
        return Path(unquote(urlsplit(url).path))
    if "://" not in url:
        return Path(url).expanduser()
    return None


def _request(url: str) -> urllib.request.Request:
    """A GET of ``url``, its user-info sent as basic auth (urllib does not), placeholders filled."""
    from dlsetup.envs.credentials import expand_auth
    from dlsetup.envs.http_auth import split_auth

    bare, auth = split_auth(expand_auth(url))
    parts = urlsplit(bare)
    headers = {"User-Agent": "dlsetup (reachability probe)", "Accept": "text/html, */*", **auth}
    clean = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
    return urllib.request.Request(clean, headers=headers, method="GET")  # noqa: S310 (http(s) only)


def _reason(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    inner = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(inner, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout_s:g} s"
    if isinstance(inner, socket.gaierror):
        return f"name not resolved ({inner.strerror or inner})"
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror
    return str(inner) or type(inner).__name__


def _probe_now(source: Source, timeout_s: float) -> tuple[bool, str]:
    from dlsetup.envs.credentials import redact

    local = _local_path(source.url)
    if local is not None:
        return (True, "") if local.exists() else (False, f"{local} does not exist")
    if urlsplit(source.url).scheme not in ("http", "https"):
        return False, f"not an http, https or file URL: {redact(source.url)}"
    try:
        from dlsetup.envs.uv_settings import tls_context

        # the TLS trust uv gets from the user's settings (a company CA, an insecure host)
        context = tls_context(source.url)
        handlers = [] if context is None else [urllib.request.HTTPSHandler(context=context)]
        from dlsetup.envs.http_auth import opener

        # an opener of its own: the proxy settings of now (urlopen keeps its first opener's);
        # a redirect to another host does not carry the source's credentials
        with opener(*handlers).open(_request(source.url), timeout=timeout_s) as answer:
            answer.read(1)
        return True, ""
    except urllib.error.HTTPError as exc:
        if exc.code == 404 or exc.code >= 500:
            return False, f"HTTP {exc.code}"
        return True, ""  # 401, 403, 405: something answers there
    except Exception as exc:  # every network failure is a reason, never a traceback
        return False, redact(_reason(exc, timeout_s))


def probe(source: Source, timeout_s: float = PROBE_TIMEOUT_S) -> Reach:
    """Probe one source once, for at most about ``timeout_s`` seconds (a DNS lookup included).

    A ``file://`` URL or a path is reachable when it exists; an HTTP(S) URL when a ``GET`` of it
    gets an answer other than 404 or 5xx. Never raises: a failure is the :attr:`Reach.reason`.
    """
    return probe_all([source], timeout_s)[0]


def probe_all(sources: Iterable[Source], timeout_s: float = PROBE_TIMEOUT_S) -> tuple[Reach, ...]:
    """Probe every source at once, one thread each; returns within about ``timeout_s`` seconds.

    A probe still running at the deadline (a name lookup that hangs, a server that accepted the
    connection and never answers) is reported ``no answer within T s``; its daemon thread is left
    to end on its own socket timeout.
    """
    wanted = list(dict.fromkeys(sources))
    results: dict[int, Reach] = {}
    start = time.perf_counter()

    def run(i: int, source: Source) -> None:
        ok, why = _probe_now(source, timeout_s)
        results[i] = Reach(source, ok, why, time.perf_counter() - start)

    threads = [
        threading.Thread(target=run, args=(i, s), name="dlsetup-probe", daemon=True)
        for i, s in enumerate(wanted)
    ]
    for thread in threads:
        thread.start()
    deadline = start + timeout_s + 0.25
    for thread in threads:
        thread.join(max(0.0, deadline - time.perf_counter()))
    late = f"no answer within {timeout_s:g} s"
    return tuple(
        results.get(i, Reach(s, False, late, time.perf_counter() - start))
        for i, s in enumerate(wanted)
    )


@dataclass(frozen=True)
class TorchSources:
    """Where torch (and its companions) is resolved from, after the probes.

    Attributes:
        torch_index: PyTorch's index (or ``--torch-index-url``'s) for the variant, searched first;
            empty when it was out of reach and the fallback is used.
        indexes: the configured extra indexes that answered, searched next, in order.
        find_links: the configured find-links that answered.
        default_index: the default index (PyPI or the configured one), searched last.
        tried: every probe, in the fallback order.
        fallback: why PyTorch's index was not used and what is used instead, in one sentence;
            empty when it was.
        seconds: the time the probes took (the time to the fallback decision).
    """

    torch_index: str
    indexes: tuple[Source, ...]
    find_links: tuple[Source, ...]
    default_index: Source
    tried: tuple[Reach, ...]
    fallback: str = ""
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """Each source and where it came from, credentials masked: for a plan or a lock header."""
        return [reach.display() for reach in self.tried]


def choose_torch_sources(
    torch_index: Source,
    configured: Sequence[Source],
    default_index: Source,
    *,
    pypi_fits: str | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> TorchSources:
    """Probe PyTorch's index, the configured sources and the default index at once; choose
    (:func:`decide`).

    Args:
        torch_index: PyTorch's index for the variant (origin ``PyTorch's index`` or the option).
        configured: the configured extra indexes and find-links (:mod:`dlsetup.envs.sources`).
        default_index: the default index (PyPI, or the configured one).
        pypi_fits: when falling back, why the default index's torch build does not fit this
            machine (None: it fits, or the variant is cpu); it is then not a torch source.
        timeout_s: each probe's timeout, seconds (all run at once).

    Raises:
        SolveError: PyTorch's index is out of reach and no fallback source is left: the message
            names every source tried and why, the fix names ``--torch-index-url``.
    """
    start = time.perf_counter()
    reaches = probe_all([torch_index, *configured, default_index], timeout_s)
    found = {r.source: r for r in reaches}
    chosen = decide(
        found[torch_index],
        [found[s] for s in configured],
        found[default_index],
        pypi_fits=pypi_fits,
    )
    return replace(chosen, seconds=time.perf_counter() - start)


def decide(
    torch_reach: Reach,
    configured: Sequence[Reach],
    default_reach: Reach,
    *,
    pypi_fits: str | None = None,
    given: bool = False,
) -> TorchSources:
    """Choose torch's sources from probes already made (:func:`choose_torch_sources`).

    Args:
        torch_reach: PyTorch's index for the variant.
        configured: the configured extra indexes and find-links.
        default_reach: the default index.
        pypi_fits: why the default index's torch does not fit this machine (None: it fits).
        given: the torch index was named by the user (``--torch-index-url``): no fallback.

    Raises:
        SolveError: no source of torch is left (every one tried named, with why).
    """
    reaches = (torch_reach, *configured, default_reach)
    indexes = tuple(r.source for r in configured if r.reachable and r.source.kind == "index")
    links = tuple(r.source for r in configured if r.reachable and r.source.kind == "find-links")
    default = default_reach.source
    if torch_reach.reachable:
        return TorchSources(torch_reach.source.url, indexes, links, default, reaches)
    if given:
        raise SolveError(
            f"the PyTorch index {torch_reach.source.display()} is out of reach "
            f"({torch_reach.reason})",
            fix="check the URL and the network, or name another mirror of PyTorch's index "
            "with --torch-index-url",
        )
    usable = [r.source for r in configured if r.reachable]
    if default_reach.reachable and pypi_fits is None:
        usable.append(default)
    if not usable:
        raise _no_source(reaches, pypi_fits)
    fallback = (
        f"PyTorch's index {torch_reach.source.shown} is out of reach ({torch_reach.reason}); "
        f"torch and its companions come from {', '.join(s.display() for s in usable)} "
        f"(fallback order: {FALLBACK_ORDER})"
    )
    if pypi_fits is not None:
        fallback += f"; not from the default index: {pypi_fits}"
    return TorchSources("", indexes, links, default, reaches, fallback)


def _no_source(reaches: Sequence[Reach], pypi_fits: str | None) -> SolveError:
    tried = "; ".join(r.display() for r in reaches)
    why = f"; the default index's torch is not taken: {pypi_fits}" if pypi_fits else ""
    return SolveError(
        f"no source of torch is within reach (tried, in order: {tried}){why}",
        fix="name a mirror of PyTorch's index: dlsetup lock ... --torch-index-url "
        "https://MIRROR/whl/{variant} (or set it in pip's or uv's configuration)",
    )


def environ_timeout(default: float = PROBE_TIMEOUT_S) -> float:
    """The probe timeout: ``DLSETUP_PROBE_TIMEOUT`` seconds when set to a number, else ``default``."""
    value = os.environ.get("DLSETUP_PROBE_TIMEOUT", "")
    try:
        return max(0.1, float(value)) if value else default
    except ValueError:
        return default


def pypi_torch_misfit(choice: VariantChoice, release: str) -> str | None:
    """Why the torch build PyPI itself carries for ``release`` does not fit ``choice``'s driver
    and GPUs; None when it fits (or the choice is not CUDA: PyPI's build also runs on a CPU,
    which the lock's variant check then states).

    The knowledge base's ``pypi_default`` names PyPI's variant per release (``cu130``).
    """
    if choice.variant != "cuda" or choice.cuda is None:
        return None
    from dlsetup.compat import knowledge_base
    from dlsetup.compat.arch import gpu_runs_build, parse_arch_list
    from dlsetup.compat.cuda import driver_supports_cuda
    from dlsetup.compat.frameworks import torch_variants, variant_cuda

    entry = knowledge_base().torch.releases.get(release)
    variant = entry.pypi_default if entry is not None else None
    if variant is None:
        return f"the knowledge base does not say which CUDA PyPI's torch {release} is built for"
    cuda = variant_cuda(variant)
    verdict = driver_supports_cuda(choice.cuda, cuda, choice.driver_version)
    if verdict.support not in ("full", "minor_version_compat"):
        return (
            f"PyPI's torch {release} is the {variant} build, which needs a driver for CUDA {cuda} "
            f"(this driver: CUDA {choice.cuda})"
        )
    arch_text = torch_variants(release).get(variant)
    if arch_text is None:
        return f"the arch list of PyPI's torch {release} ({variant}) is not known"
    arch = parse_arch_list(arch_text)
    missing = [g.label for g in choice.gpus if not gpu_runs_build(g.cc, arch).runs]
    if missing:
        return f"PyPI's torch {release} ({variant}) has no kernels for {', '.join(missing)}"
    return None


@dataclass(frozen=True)
class VenvSources:
    """Every source a venv lock resolves from, probed once, with where each came from.

    Attributes:
        default_index: the default index (``--index-url``, else the configured one, else PyPI).
        indexes: the configured extra indexes that answered, searched before the default one.
        find_links: the configured find-links that answered.
        torch: per wheel variant (``cpu``, ``cu126``), torch's sources; empty without torch.
        tried: every probe made.
        notes: what was left out and why (a configured source out of reach; configured sources
            not used because ``--index-url`` was given).
        seconds: the time the probes took (the time to the fallback decision).
    """

    default_index: Source
    indexes: tuple[Source, ...] = ()
    find_links: tuple[Source, ...] = ()
    torch: Mapping[str, TorchSources] = field(default_factory=dict)
    tried: tuple[Reach, ...] = ()
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    def for_variant(self, variant: str | None) -> tuple[list[str], list[str], str]:
        """uv's ``(indexes in order, find-links, default index)`` for one platform's resolve:
        torch's index (when reachable) first, then the configured ones."""
        chosen = self.torch.get(variant) if variant is not None else None
        first = [chosen.torch_index] if chosen is not None and chosen.torch_index else []
        indexes = first + [s.url for s in self.indexes]
        return indexes, [s.url for s in self.find_links], self.default_index.url

    def torch_index(self, variant: str) -> str:
        """The PyTorch index searched first for ``variant``; empty when out of reach (the
        fallback: the configured sources, then the default index)."""
        chosen = self.torch.get(variant)
        return chosen.torch_index if chosen is not None else ""

    def explain_failure(self, error: SolveError) -> SolveError:
        """``error`` (uv could not resolve) with the probe's verdict on the default index added
        where it was already out of reach before uv ran: uv's own message is then a retry
        count and a connection error, and the cause is the default index, named with its origin.

        A default index out of reach is not refused up front: the configured sources searched
        before it may hold every package, and uv then never asks it.
        """
        down = next(
            (r for r in self.tried if r.source == self.default_index and not r.reachable), None
        )
        if down is None:
            return error
        return SolveError(
            f"{error.message}\nThe default index was already out of reach when dlsetup probed it: "
            f"{down.display()}; every package the sources before it do not hold comes from it",
            fix="bring that mirror back or name another index with --index-url (a configured "
            "index-url comes from the origin named above)",
        )

    def urls(self) -> tuple[str, ...]:
        """Every URL uv may be given (for its cache choice: one with credentials gets a private
        cache)."""
        return tuple(r.source.url for r in self.tried) or (self.default_index.url,)

    def lines(self) -> list[str]:
        """One line per source used, and per note: ``URL (origin)``, credentials masked."""
        used = [
            *(t.tried[0].source for t in self.torch.values() if t.torch_index),
            *self.indexes,
            *self.find_links,
            self.default_index,
        ]
        lines = [t.fallback for t in self.torch.values() if t.fallback]
        lines += [f"{s.kind} {s.display()}" for s in dict.fromkeys(used)]
        return lines + list(self.notes)


def plan_venv_sources(
    *,
    index_url: str | None,
    torch_indexes: Mapping[str, str],
    torch_given: bool,
    pypi_misfit: str | None = None,
    places: Places | None = None,
    timeout_s: float | None = None,
) -> VenvSources:
    """Read the configured sources, probe them all at once with torch's and the default index,
    and choose torch's sources per variant (:func:`decide`).

    Args:
        index_url: ``--index-url`` (it wins: the configured sources are then not used).
        torch_indexes: ``{variant: PyTorch's index URL}`` for the variants locked.
        torch_given: the torch index came from ``--torch-index-url`` (no fallback from it).
        pypi_misfit: why PyPI's torch does not fit this machine (:func:`pypi_torch_misfit`).
        places: where configuration is read (default: this machine's).
        timeout_s: each probe's timeout (default: :func:`environ_timeout`).

    Raises:
        SolveError: torch has no source within reach (all named, and the fix).
        InputError: a configuration file that cannot be read (named, with the fix).
    """
    from dlsetup.envs.sources import PYPI_INDEX, pypi_sources

    configured = () if index_url else pypi_sources(places)
    notes = (
        ["--index-url given: the indexes configured for pip and uv are not used"]
        if index_url
        else []
    )
    default = next((s for s in configured if s.kind == "index" and s.default), None)
    if index_url:
        default = Source("index", index_url, "--index-url", default=True)
    elif default is None:
        default = Source("index", PYPI_INDEX, "PyPI, the default index", default=True)
    extras = [s for s in configured if not s.default]
    origin = "--torch-index-url" if torch_given else "PyTorch's index"
    wanted = {v: Source("index", url, origin) for v, url in torch_indexes.items()}
    start = time.perf_counter()
    reaches = probe_all([*wanted.values(), *extras, default], timeout_s or environ_timeout())
    seconds = time.perf_counter() - start
    found = {r.source: r for r in reaches}
    extra_reaches = [found[s] for s in extras]
    torch = {
        v: decide(found[s], extra_reaches, found[default], pypi_fits=pypi_misfit, given=torch_given)
        for v, s in wanted.items()
    }
    notes += [f"left out, out of reach: {r.display()}" for r in extra_reaches if not r.reachable]
    return VenvSources(
        default_index=default,
        indexes=tuple(r.source for r in extra_reaches if r.reachable and r.source.kind == "index"),
        find_links=tuple(
            r.source for r in extra_reaches if r.reachable and r.source.kind == "find-links"
        ),
        torch=torch,
        tried=reaches,
        notes=tuple(notes),
        seconds=seconds,
    )
