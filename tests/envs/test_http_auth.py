"""dlsetup's own reads from a private index (the reachability probe, a wheel's PEP 658 metadata)
send its user-info as basic auth; a redirect to another host (a mirror handing its files to a
CDN) must not carry it there. urllib copies every header to wherever a redirect points,
``Authorization`` included; :mod:`dlsetup.envs.http_auth` drops it where it leaves home, as pip
and uv do. Real HTTP servers on 127.0.0.1, reached as ``localhost`` for "another host"."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlsetup.envs.http_auth import _leaves_home
from tests.support.http_server import AUTHORIZATION, redirecting_index


@pytest.mark.parametrize(
    ("before", "after", "leaves"),
    [
        ("https://mirror.example/simple/x/", "https://mirror.example/files/x.whl", False),
        ("https://mirror.example/x", "https://cdn.example/x", True),
        ("https://mirror.example/x", "https://mirror.example:8443/x", True),
        ("https://mirror.example/x", "http://mirror.example/x", True),
        ("http://mirror.example/x", "https://mirror.example/x", False),  # an upgrade, default ports
        ("http://mirror.example:8080/x", "https://mirror.example:8443/x", True),
        ("https://mirror.example:443/x", "https://mirror.example/x", False),
    ],
)
def test_what_counts_as_leaving_the_credentials_host(before: str, after: str, leaves: bool) -> None:
    assert _leaves_home(before, after) is leaves


def _said(seen: list[tuple[str, str | None]]) -> set[str | None]:
    return {auth for _, auth in seen}


@pytest.mark.parametrize("other_host", [True, False], ids=["to-another-host", "same-host"])
def test_the_reachability_probe_keeps_the_password_on_the_indexs_host(
    tmp_path: Path, other_host: bool
) -> None:
    from dlsetup.envs.reachability import probe
    from dlsetup.envs.sources import Source

    (tmp_path / "cdn" / "simple").mkdir(parents=True)
    (tmp_path / "cdn" / "simple" / "index.html").write_text("<html></html>")
    with redirecting_index(tmp_path, other_host=other_host) as served:
        reach = probe(Source("index", f"{served.url}/simple/", "test"), timeout_s=10)
    assert reach.reachable, reach
    assert _said(served.index_seen) == {AUTHORIZATION}
    if other_host:
        assert served.cdn_seen and _said(served.cdn_seen) == {None}, served.cdn_seen
    else:
        assert not served.cdn_seen


@pytest.mark.parametrize("other_host", [True, False], ids=["to-another-host", "same-host"])
def test_a_wheels_metadata_is_read_without_the_password_on_another_host(
    tmp_path: Path, other_host: bool
) -> None:
    from dlsetup.envs.pypi.resolve import _metadata_text

    (tmp_path / "cdn").mkdir()
    (tmp_path / "cdn" / "x-1.0-py3-none-any.whl.metadata").write_text(
        "Metadata-Version: 2.1\nName: x\nVersion: 1.0\n"
    )
    with redirecting_index(tmp_path, other_host=other_host) as served:
        wheel = "x-1.0-py3-none-any.whl"
        text = _metadata_text(f"{served.bare}/{wheel}", f"{served.url}/{wheel}")
    assert text is not None and "Name: x" in text
    assert _said(served.index_seen) == {AUTHORIZATION}
    if other_host:
        assert served.cdn_seen and _said(served.cdn_seen) == {None}, served.cdn_seen
    else:
        assert not served.cdn_seen
