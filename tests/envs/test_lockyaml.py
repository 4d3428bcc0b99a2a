"""The fast conda-lock YAML reader returns exactly what ``yaml.safe_load`` returns (issue 9's
speed target needed it: PyYAML alone took the whole 0.2 s on a 1,000-package lock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dlsetup.envs.lockfiles.condalock_yaml import load_conda_lock
from tests.envs.lock_builders import build_fixture, write_conda_lock

HEADER = "version: 1\nmetadata:\n  content_hash:\n    linux-64: abc\n  platforms:\n  - linux-64\n"

#: scalars YAML 1.1 does not read as the string they look like, and ordinary ones
TRICKY = [
    "1.10", "1.0", "10", "0x1F", "0o17", "1_000", "1:20", "2026-01-01", "yes", "No", "on", "off",
    "null", "~", "true", "False", ".inf", "-.nan", "3.11.7", "2.13.0", "cpu_mkl_py312h0_100",
    ">=1,<2 || >=3", "*", "a: b", "x #y", "#z", "'q'", '"d"', "", " lead", "trail ", "[1]", "{a: 1}",
    "&anchor", "!tag", "|", ">", "@at", "%p", "`t", "a\nb", "url: x", "file:///tmp/x y.tar.bz2",
    "https://host/ch/linux-64/x-1.0-h0_0.conda", "-", "- x", "?", "é", "__glibc",
]  # fmt: skip


def _lock_text(packages: list[dict[str, Any]], sort_keys: bool = False) -> str:
    """As conda-lock writes it: ``version`` first, or (older writers) keys sorted, so
    ``version: 1`` follows the packages."""
    return yaml.safe_dump(
        {"version": 1, "metadata": {"platforms": ["linux-64"]}, "package": packages},
        sort_keys=sort_keys,
    )


scalars = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12), st.integers(), st.booleans())
keys = st.one_of(
    st.sampled_from(["name", "version", "url", "true", "1", "a b", "x:y"]), st.text(max_size=6)
)
packages = st.lists(
    st.dictionaries(
        keys,
        st.one_of(
            scalars, st.dictionaries(keys, scalars, max_size=3), st.lists(scalars, max_size=2)
        ),
        min_size=1,
        max_size=6,
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=400, deadline=None)
@given(packages=packages, sort_keys=st.booleans())
def test_any_document_reads_as_pyyaml_reads_it(
    packages: list[dict[str, Any]], sort_keys: bool
) -> None:
    text = _lock_text(packages, sort_keys)
    assert load_conda_lock(text) == yaml.safe_load(text)


@pytest.mark.parametrize(
    "body",
    [
        "- name: a\n  version: 1.10\n",  # a float, not "1.10"
        "- name: a\n  build:\n- name: b\n",  # a null, not {}
        "- name: a\n  dependencies: {x: '1'}\n",  # a flow mapping
        "- name: a\n  name: b\n",  # a duplicate key: the last wins
        "- name: a # a comment\n",
        "- name: a\n  deps:\n    x: '1'\n      y: 2\n",  # not this layout (a YAML error)
        "- name: a\nother: 1\n",  # a top-level key after the packages
        "- name: 'it''s'\n",
        "- name: a\r\n  version: '1'\r\n",
        "- &a name: x\n",
        "  - name: indented\n",
        "- name: a\nversion: 1\nmetadata: {}\n",  # a key the header has too
        "- name: a\nversion: 1\n# trailing comment\n",
    ],
)
def test_layouts_other_than_the_writers_go_to_pyyaml(body: str) -> None:
    text = HEADER + "package:\n" + body
    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError:
        with pytest.raises(yaml.YAMLError):
            load_conda_lock(text)
        return
    assert load_conda_lock(text) == expected


def test_conda_locks_own_output_reads_identically(tmp_path: Path) -> None:
    fx = build_fixture(tmp_path / "fx")
    text = write_conda_lock(fx, tmp_path / "x.conda-lock.yml").read_text()
    assert load_conda_lock(text) == yaml.safe_load(text)
