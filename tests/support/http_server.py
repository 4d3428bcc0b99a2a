"""HTTP servers on 127.0.0.1 for the tests, and a port nothing listens on.

:func:`serve` serves a directory with a handler class of the test's choosing until its block ends:
:class:`QuietHandler` serves it as it is; :class:`BasicAuthHandler` only to requests with one
user's basic auth (the shape of a private conda channel or package index: rattler, uv and pip send
a URL's user-info that way), recording every ``Authorization`` header it receives, so a test can
see that a tool really authenticated. :func:`basic_auth_server` is the two together.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

#: the user and password of the private channels and indexes the credential tests serve
USER = "alice"
PASSWORD = "s3cret-Pw-4711"

H = TypeVar("H", bound=http.server.SimpleHTTPRequestHandler)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (a connection is refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def basic_auth(user: str, password: str) -> str:
    """The ``Authorization`` header value of HTTP basic auth for ``user`` and ``password``."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


#: the ``Authorization`` header of :data:`USER` and :data:`PASSWORD`
AUTHORIZATION = basic_auth(USER, PASSWORD)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves its directory and logs nothing (no request lines in the test output)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class BasicAuthHandler(QuietHandler):
    """Serves its directory to requests whose ``Authorization`` header is :attr:`expected` only;
    every other request gets 401 and a basic-auth challenge for :attr:`realm`. Every header
    received (None where there was none) is appended to :attr:`seen`."""

    expected = ""
    realm = "index"
    seen: list[str | None]

    def do_GET(self) -> None:
        got = self.headers.get("Authorization")
        self.seen.append(got)
        if got != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Basic realm="{self.realm}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        self.do_GET()


@contextlib.contextmanager
def serve(directory: Path, handler: type[H], **attributes: Any) -> Iterator[tuple[str, type[H]]]:
    """``directory`` served over HTTP on 127.0.0.1 until the block ends.

    Args:
        directory: what is served.
        handler: the handler class; the server uses a subclass of it with ``attributes`` set.
        attributes: class attributes of that subclass (the events, lists and values a test
            reads or sets while the server runs).

    Yields:
        ``(http://127.0.0.1:PORT, the subclass)``.
    """
    cls: type[H] = type("Handler", (handler,), dict(attributes))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(cls, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", cls
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def basic_auth_server(
    directory: Path, user: str = USER, password: str = PASSWORD, realm: str = "index"
) -> Iterator[tuple[str, list[str | None]]]:
    """``directory`` served to ``user`` and ``password`` only (:class:`BasicAuthHandler`).

    Yields:
        ``(http://127.0.0.1:PORT, the Authorization headers received)``.
    """
    seen: list[str | None] = []
    expected = basic_auth(user, password)
    with serve(directory, BasicAuthHandler, expected=expected, realm=realm, seen=seen) as (url, _):
        yield url, seen


class RecordingHandler(QuietHandler):
    """Serves its directory; appends ``(path, Authorization header or None)`` of every ``GET``
    to :attr:`seen`."""

    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        super().do_GET()


class RedirectingHandler(RecordingHandler):
    """A private index that hands its files on: answers :data:`AUTHORIZATION` only, and sends
    every ``GET`` on to :attr:`target` ``/cdn`` + the path (302), serving paths under ``/cdn/``
    itself (so an empty :attr:`target` is a redirect within its own host)."""

    target = ""

    def do_GET(self) -> None:
        if self.headers.get("Authorization") == AUTHORIZATION and self.path.startswith("/cdn/"):
            super().do_GET()
            return
        self.seen.append((self.path, self.headers.get("Authorization")))
        authorized = self.headers.get("Authorization") == AUTHORIZATION
        self.send_response(302 if authorized else 401)
        if authorized:
            self.send_header("Location", f"{self.target}/cdn{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()


@dataclass(frozen=True)
class Redirects:
    """What :func:`redirecting_index` serves and saw.

    Attributes:
        url: the index's root with :data:`USER` and :data:`PASSWORD` as user-info.
        bare: the same without them.
        index_seen: ``(path, Authorization)`` of every request the index got.
        cdn_seen: the same for the other host (empty when the redirects stay home).
    """

    url: str
    bare: str
    index_seen: list[tuple[str, str | None]]
    cdn_seen: list[tuple[str, str | None]]


@contextlib.contextmanager
def redirecting_index(root: Path, *, other_host: bool) -> Iterator[Redirects]:
    """``root`` behind :class:`RedirectingHandler`: its files at ``/NAME`` are sent on to
    ``/cdn/NAME`` of ``root``, on a second server reached as ``localhost`` (another host than the
    index's 127.0.0.1 for a client, as a CDN is) or, without ``other_host``, on the index itself."""
    cdn_seen: list[tuple[str, str | None]] = []
    index_seen: list[tuple[str, str | None]] = []
    with serve(root, RecordingHandler, seen=cdn_seen) as (cdn, _):
        target = cdn.replace("127.0.0.1", "localhost") if other_host else ""
        with serve(root, RedirectingHandler, seen=index_seen, target=target) as (index, _):
            url = index.replace("http://", f"http://{USER}:{PASSWORD}@")
            yield Redirects(url, index, index_seen, cdn_seen)
