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

import base64
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from dlsetup.envs.sources import Source
from dlsetup.errors import SolveError

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

    parts = urlsplit(expand_auth(url))
    netloc = parts.netloc
    headers = {"User-Agent": "dlsetup (reachability probe)", "Accept": "text/html, */*"}
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        token = base64.b64encode(unquote(userinfo).encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    clean = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
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
        with urllib.request.urlopen(_request(source.url), timeout=timeout_s) as answer:  # noqa: S310
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
    """Probe PyTorch's index, the configured sources and the default index at once; choose.

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
    seconds = time.perf_counter() - start
    first, rest, last = reaches[0], reaches[1:-1], reaches[-1]
    indexes = tuple(r.source for r in rest if r.reachable and r.source.kind == "index")
    links = tuple(r.source for r in rest if r.reachable and r.source.kind == "find-links")
    if first.reachable:
        return TorchSources(torch_index.url, indexes, links, default_index, reaches, "", seconds)
    usable = [r.source for r in rest if r.reachable]
    if last.reachable and pypi_fits is None:
        usable.append(default_index)
    if not usable:
        raise _no_source(reaches, pypi_fits)
    fallback = (
        f"PyTorch's index {torch_index.shown} is out of reach ({first.reason}); torch and its "
        f"companions come from {', '.join(s.display() for s in usable)} (fallback order: "
        f"{FALLBACK_ORDER})"
    )
    return TorchSources("", indexes, links, default_index, reaches, fallback, seconds)


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
