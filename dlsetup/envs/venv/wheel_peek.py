"""Read one small file out of a resolved wheel without downloading the wheel: the zip's central
directory and the one member, through HTTP range requests (a ``file://`` wheel is opened where it
lies). This is how a lock sees what a wheel's metadata does not say: PyPI's torchvision and
torchaudio name no CUDA version in their metadata (no local version, no ``nvidia-*``
requirement), yet their ``torchaudio/version.py`` does (``__version__ = '2.11.1+cu132'``).

A few tens of KiB are read per wheel; a server that ignores ``Range`` sends the whole wheel, read
up to :data:`MAX_WHOLE_WHEEL` bytes. The index's user-info (``https://user:pw@mirror/simple``)
is sent as basic auth to the wheels under it, its ``${VAR}`` placeholders filled in only here;
nothing read or sent is printed or stored. Standard library only.
"""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

#: the most of one member read (bytes): a version.py is a few hundred
MAX_MEMBER = 64 << 10
#: the wheel's tail read first (bytes): the central directory of a companion wheel fits in it
TAIL = 64 << 10
#: the most read of a wheel whose server ignores Range (bytes)
MAX_WHOLE_WHEEL = 64 << 20
#: seconds per request
TIMEOUT_S = 20.0

_VERSION = re.compile(r"""^__version__\s*(?::\s*\w+\s*)?=\s*['"]([^'"]+)['"]""", re.MULTILINE)


class PeekError(Exception):
    """The member could not be read; the message says why, in words, without credentials."""


def version_in(text: str) -> str | None:
    """``__version__`` assigned in a ``version.py`` (``2.11.1+cu132``); None without one."""
    match = _VERSION.search(text)
    return match.group(1) if match else None


def _auth_header(url: str, indexes: Sequence[str]) -> tuple[str, dict[str, str]]:
    """The wheel's URL without user-info, and the basic auth of the index whose root holds it
    (the wheel's own user-info first)."""
    from dlsetup.envs.credentials import expand_auth, strip_auth
    from dlsetup.envs.http_auth import split_auth

    full = expand_auth(url)
    clean, headers = split_auth(full)
    if not headers:
        bare = strip_auth(url)
        for index in indexes:
            root = strip_auth(index).rstrip("/").removesuffix("/simple")
            if root and bare.startswith(root + "/"):
                _, headers = split_auth(expand_auth(index))
                if headers:
                    break
    return clean, headers


class _RangeFile(io.RawIOBase):
    """A wheel on an HTTP server as a seekable file: each read a range request, the tail kept."""

    def __init__(self, url: str, headers: dict[str, str], opener: urllib.request.OpenerDirector):
        super().__init__()
        self._url, self._headers, self._opener = url, headers, opener
        self._pos = 0
        self.size, self._tail_start, self._tail = 0, 0, b""
        self.whole: bytes | None = None

    def _get(self, range_value: str) -> tuple[int, str, bytes]:
        """(status, Content-Range, body) of a GET of ``range_value`` (headers looked up as HTTP
        has them: case-insensitively)."""
        headers = {**self._headers, "Range": range_value, "Accept-Encoding": "identity"}
        request = urllib.request.Request(self._url, headers=headers)  # noqa: S310 (http(s) only)
        with self._opener.open(request, timeout=TIMEOUT_S) as answer:
            body = answer.read(MAX_WHOLE_WHEEL + 1)
            return answer.status, str(answer.headers.get("Content-Range", "")), body

    def open_tail(self) -> None:
        status, content_range, body = self._get(f"bytes=-{TAIL}")
        if status != 206:  # Range ignored: the whole wheel came
            if len(body) > MAX_WHOLE_WHEEL:
                raise PeekError(
                    f"the server ignores Range and the wheel is over {MAX_WHOLE_WHEEL} bytes"
                )
            self.whole = body
            return
        total = content_range.rpartition("/")[2]
        if not total.isdigit():
            raise PeekError("the server's Content-Range names no size")
        self.size = int(total)
        self._tail_start, self._tail = self.size - len(body), body

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        want = min(len(buffer), max(self.size - self._pos, 0))
        if want == 0:
            return 0
        if self._pos >= self._tail_start:
            start = self._pos - self._tail_start
            data = self._tail[start : start + want]
        else:
            end = min(self._pos + max(want, 16 << 10), self._tail_start) - 1
            _, _, data = self._get(f"bytes={self._pos}-{end}")
            data = data[:want]
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _local(url: str) -> Path | None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme == "":
        return Path(url)
    return None


def _member(archive: zipfile.ZipFile, member: str) -> str:
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise PeekError(f"the wheel has no {member}") from None
    if info.file_size > MAX_MEMBER:
        raise PeekError(f"{member} is over {MAX_MEMBER} bytes")
    with archive.open(info) as handle:
        return handle.read(MAX_MEMBER).decode("utf-8", "replace")


def read_member(url: str, member: str, indexes: Sequence[str] = ()) -> str:
    """The text of ``member`` (``torchaudio/version.py``) in the wheel at ``url``.

    Args:
        url: the wheel's URL as the resolution names it (``file://``, ``https://``).
        member: the path inside the wheel.
        indexes: the sources searched; the one whose root holds ``url`` lends its credentials.

    Raises:
        PeekError: the wheel or the member could not be read (the reason, credentials masked).
    """
    from dlsetup.envs.credentials import redact

    try:
        local = _local(url)
        if local is not None:
            with zipfile.ZipFile(local) as archive:
                return _member(archive, member)
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise PeekError(f"not an http, https or file URL: {redact(url)}")
        from dlsetup.envs.uv_settings import tls_context

        clean, headers = _auth_header(url, indexes)
        context = tls_context(clean)
        from dlsetup.envs.http_auth import opener

        handlers = [] if context is None else [urllib.request.HTTPSHandler(context=context)]
        # credentials stay on the index's host when a redirect leads elsewhere (a CDN)
        remote = _RangeFile(clean, headers, opener(*handlers))
        remote.open_tail()
        source: io.IOBase = io.BytesIO(remote.whole) if remote.whole is not None else remote
        with zipfile.ZipFile(source) as archive:
            return _member(archive, member)
    except PeekError:
        raise
    except urllib.error.HTTPError as exc:
        raise PeekError(f"HTTP {exc.code}") from None
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise PeekError(redact(str(exc) or type(exc).__name__)) from None
