"""Issue 22 item 3 on the conda backend's PyPI part: a ``pip:`` section that names no index is
resolved from the index configured for pip (a mirror of PyPI), said in the lock's header; one
that names its own ``--index-url`` keeps it. The real rattler solves from the local test channel,
the real uv resolves from a local wheel index written in the user's ``pip.conf``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dlsetup.cli import cli
from tests.support.user_config import own_home
from tests.support.wheels import Wheel, build_index


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A one-wheel index configured as pip's ``index-url`` in a home of the test's own."""
    build_index(tmp_path / "mirror", [Wheel("tiny-dep", "1.2")])
    url = (tmp_path / "mirror" / "simple").resolve().as_uri()
    home = own_home(tmp_path, monkeypatch)
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text(
        f"[global]\nindex-url = {url}\n", encoding="utf-8"
    )
    return url


def lock(tmp_path: Path, channel_url: str, pip: list[str]) -> Result:
    path = tmp_path / "mine.yml"
    lines = ["name: mine", "channels:", "  - conda-forge", "dependencies:", "  - python 3.12.*",
             "  - pip:", *(f"    - {p}" for p in pip)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return CliRunner().invoke(
        cli,
        ["lock", str(path), "--variant", "cpu", "--platform", "linux-64", "--channel",
         channel_url, "--output", str(tmp_path / "out")],
    )  # fmt: skip


def test_a_pip_section_without_an_index_uses_the_one_configured_for_pip(
    mirror: str, channel_url: str, tmp_path: Path
) -> None:
    result = lock(tmp_path, channel_url, ["tiny-dep"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "mine.conda-lock.yml").read_text(encoding="utf-8")
    origin = "pip config ~/.config/pip/pip.conf [global] index-url"
    assert f"# Channel: pip: section from {mirror} ({origin})." in text
    assert f"wheels only, from {mirror}." in text
    assert "tiny_dep-1.2-py3-none-any.whl" in text
    assert f"  Channel: pip: section from {mirror} ({origin})." in result.output


def test_a_pip_section_naming_its_index_keeps_it(
    mirror: str, channel_url: str, tmp_path: Path
) -> None:
    own = tmp_path / "own"
    build_index(own, [Wheel("tiny-dep", "0.5")])
    index = (own / "simple").resolve().as_uri()
    result = lock(tmp_path, channel_url, [f"--index-url {index}", "tiny-dep"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "mine.conda-lock.yml").read_text(encoding="utf-8")
    assert "pip: section from" not in text
    assert "tiny_dep-0.5-py3-none-any.whl" in text
