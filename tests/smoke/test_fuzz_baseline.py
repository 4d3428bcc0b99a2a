"""Property-based fuzzing of benchmark documents given to ``dlsetup smoke --compare``.

Mutations of the committed baseline (keys dropped, values replaced with junk of any JSON type,
entries duplicated, raw bytes) go through the same two steps as ``--compare``: reading the
baseline, then comparing this run's metrics with it. Each must end as a comparison (exit 0 or
1) or a :class:`dlsetup.errors.DlsetupError` with exit 2 or 4 — never another exception, which
the CLI would turn into exit 70. (The whole CLI is not run per example: a valid baseline would
start a real smoke run; the CLI path of a malformed one is in test_smoke_safety.py.)
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlsetup.errors import DlsetupError
from dlsetup.smoke import benchmark as bm
from tests.support.mutate import mutate
from tests.support.proc import REPO

BASELINE: dict[str, Any] = json.loads(
    (REPO / "benchmarks" / "baseline" / "smoke-cpu.json").read_text(encoding="utf-8")
)
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["dlsetup.smoke-benchmark", "ms", "torch/cpu/ms_per_step", ""]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def baselines(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return draw(st.binary(max_size=100))
    if kind == 1:
        return json.dumps(draw(JUNK)).encode()
    doc: Any = copy.deepcopy(BASELINE)
    if kind == 2:  # the github-action-benchmark list form
        doc = [{"name": "a", "unit": "ms", "value": 1.0}]
    doc = mutate(draw, doc, JUNK)
    text = json.dumps(doc)
    if draw(st.integers(0, 9)) == 0:
        text = text.replace("0.", "NaN", 1)  # Python's json writes NaN; a baseline must not
    return text.encode()


CURRENT = [bm.Metric(name="torch/cpu/ms_per_step", unit="ms", value=3.0)]


@settings(
    max_examples=3000,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(document=baselines())
def test_any_baseline_reads_and_compares_or_is_a_clear_error(document: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "baseline.json"
        path.write_bytes(document)
        try:
            loaded = bm.load_baseline(path)
        except DlsetupError as exc:
            assert int(exc.exit_code) in (2, 4)
            assert str(path) in exc.message
            return
        comparison = bm.compare(CURRENT, loaded, 0.25, str(path))
        assert comparison.compared >= 0
        assert isinstance(comparison.passed, bool)
