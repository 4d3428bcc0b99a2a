"""docs/doctor.md documents every check id (so the docs cannot drift from the catalogue)."""

from __future__ import annotations

from dlsetup.checks import CHECK_IDS
from tests.support.proc import REPO


def test_every_check_id_is_documented_with_its_severity() -> None:
    text = (REPO / "docs" / "doctor.md").read_text(encoding="utf-8")
    for check_id, severity in CHECK_IDS.items():
        assert f"#### `{check_id}` ({severity}" in text, check_id
