"""A stand-in for PyPI, for a uv that takes no index option and so asks PyPI's own address.

The conda path's ``uv pip install`` gets no index (``--no-config``, no source variables): the
build requirements of an ``--allow-build`` sdist come from uv's default index, PyPI. A hermetic
test cannot reach PyPI, so :func:`pypi_standin` answers for it the way a company network does:
an HTTP proxy (``HTTPS_PROXY``, which dlsetup hands to uv as the user set it) whose ``CONNECT``
tunnels lead to a local HTTPS server with a certificate for ``pypi.org`` and
``files.pythonhosted.org`` signed by a CA the test makes, trusted through ``SSL_CERT_FILE``. The
server serves a PEP 503 index built by :func:`tests.support.wheels.build_index` (``/simple/...``,
``/files/...``). Nothing is patched in uv or dlsetup; the hosts uv asked the proxy for are recorded.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.http_server import QuietHandler
from tests.support.https_server import make_tls_files

#: the names PyPI answers on (its index and its file host)
PYPI_HOSTS = ("pypi.org", "files.pythonhosted.org")


@dataclass(frozen=True)
class Standin:
    """What a test gives the process under test, and what the proxy saw.

    Attributes:
        env: the variables that route uv's requests for PyPI to the stand-in (the proxy, the CA,
            and an own uv cache so no real PyPI page is taken from, or left in, a shared one).
        hosts: ``host:port`` of every ``CONNECT`` the proxy answered, in order.
    """

    env: dict[str, str]
    hosts: list[str] = field(default_factory=list)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    sockets = [a, b]
    while True:
        readable, _, broken = select.select(sockets, [], sockets, 30)
        if broken or not readable:
            return
        for src in readable:
            data = src.recv(65536)
            if not data:
                return
            (b if src is a else a).sendall(data)


class _ConnectProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    target: tuple[str, int]
    hosts: list[str]


class _ConnectHandler(socketserver.StreamRequestHandler):
    """Answers ``CONNECT host:port`` with a tunnel to the stand-in's HTTPS server, whatever the
    host; anything else gets 405."""

    server: _ConnectProxy

    def handle(self) -> None:
        request = self.rfile.readline(65536).decode("latin-1").split()
        while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
            pass  # the request's headers
        if len(request) < 2 or request[0] != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.server.hosts.append(request[1])
        with socket.create_connection(self.server.target) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            _pipe(self.connection, upstream)


@contextlib.contextmanager
def pypi_standin(root: Path, index_root: Path) -> Iterator[Standin]:
    """Serve ``index_root`` (``simple/`` and ``files/`` of :func:`tests.support.wheels.
    build_index`) as PyPI to whoever takes the yielded :attr:`Standin.env`, until the block ends.
    ``root`` holds the certificates and the uv cache."""
    tls = make_tls_files(root / "tls", PYPI_HOSTS, ca_name="dlsetup test PyPI CA")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.chain, tls.key)
    https = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(index_root))
    )
    https.socket = context.wrap_socket(https.socket, server_side=True)
    proxy = _ConnectProxy(("127.0.0.1", 0), _ConnectHandler)
    proxy.target = ("127.0.0.1", https.server_address[1])
    proxy.hosts = []
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (https, proxy)]
    for thread in threads:
        thread.start()
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    env = {
        "HTTPS_PROXY": url, "https_proxy": url, "NO_PROXY": "", "no_proxy": "",
        "SSL_CERT_FILE": str(tls.ca), "PIP_CERT": str(tls.ca),
        "UV_CACHE_DIR": str(root / "uv-cache"),
    }  # fmt: skip
    try:
        yield Standin(env, proxy.hosts)
    finally:
        for server in (proxy, https):
            server.shutdown()
            server.server_close()
