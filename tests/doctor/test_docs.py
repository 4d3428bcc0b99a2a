"""docs/doctor.md documents every check id (so the docs cannot drift from the catalogue)."""

from __future__ import annotations

import re

from dlsetup.checks import CHECK_IDS, evaluate
from tests.doctor.test_checks import FIRES
from tests.support.proc import REPO


def test_every_check_id_is_documented_with_its_severity() -> None:
    text = (REPO / "docs" / "doctor.md").read_text(encoding="utf-8")
    for check_id, severity in CHECK_IDS.items():
        assert f"#### `{check_id}` ({severity}" in text, check_id


def test_check_id_table_lists_exactly_the_catalogue_with_its_severities() -> None:
    text = (REPO / "docs" / "doctor.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_]+\.[a-z0-9_]+)` \| (\w+) \|", text, flags=re.MULTILINE)
    assert dict(rows) == CHECK_IDS
    assert len(rows) == len(CHECK_IDS)  # no id listed twice


def test_every_documented_check_heading_is_a_real_check_id() -> None:
    text = (REPO / "docs" / "doctor.md").read_text(encoding="utf-8")
    headings = re.findall(r"^#### `([^`]+)`", text, flags=re.MULTILINE)
    assert sorted(headings) == sorted(CHECK_IDS)


def test_fix_command_column_matches_what_each_check_emits() -> None:
    text = (REPO / "docs" / "doctor.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_.0-9]+)` \| \w+ \| .+ \| ([^|]+) \|$", text, flags=re.MULTILINE)
    assert len(rows) == len(CHECK_IDS)
    for check_id, column in rows:
        if column.strip() not in ("yes", "no"):
            continue  # conditional ("for torch"): both cases are covered in test_checks
        found = [f for f in evaluate(FIRES[check_id]()) if f.id == check_id]
        assert found, check_id
        assert bool(found[0].command) == (column.strip() == "yes"), check_id
