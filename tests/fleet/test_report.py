"""``dlsetup fleet report``: per-node doctor documents merged into one drift report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from dlsetup.cli import cli
from dlsetup.commands.fleet import FACT_CHOICES
from dlsetup.fleet.report import FACT_NAMES, fleet_report
from dlsetup.output import load_schema
from tests.fleet.documents import fleet_with_three_drifts, node_document, write_nodes


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["fleet", "report", *args], catch_exceptions=False)


def _json(*args: str) -> tuple[int, dict[str, Any]]:
    result = _invoke(*args, "--json")
    document = json.loads(result.stdout)
    return result.exit_code, document


@pytest.fixture(scope="module")
def fleet64(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, set[str]]]:
    docs, drift = fleet_with_three_drifts(64)
    directory = tmp_path_factory.mktemp("fleet64")
    write_nodes(directory, docs)
    return directory, drift


def test_64_nodes_with_three_drifts_name_every_drifted_node(
    fleet64: tuple[Path, dict[str, set[str]]],
) -> None:
    directory, drift = fleet64
    code, document = _json(str(directory))
    jsonschema.validate(document, load_schema("dlsetup.fleet-report"))
    data = document["data"]
    assert code == 1 and data["exit_code"] == 1 and data["node_count"] == 64
    facts = {f["fact"]: f for f in data["facts"]}
    drifted = {
        name: {d["node"] for d in f["differing"]} for name, f in facts.items() if f["drifted"]
    }
    assert drifted == drift
    assert facts["driver"]["majority"] == "535.104.05"
    assert facts["driver"]["majority_nodes"] == 62
    assert {d["node"]: d["value"] for d in facts["driver"]["differing"]} == {
        "gpu07": "525.85.12",
        "gpu42": "525.85.12",
    }
    assert facts["mig"]["differing"] == [{"node": "gpu60", "value": "mixed: on GPU 3"}]
    assert facts["gpu_model"]["majority"] == "8 x NVIDIA H100 80GB HBM3"
    assert facts["nccl"]["majority"] == "not reported"  # doctor's torch probe has no NCCL field
    groups = {g["id"]: g for g in data["findings"]}
    assert groups["gpu.mig_enabled"] == {
        "id": "gpu.mig_enabled",
        "severity": "error",
        "title": "title of gpu.mig_enabled",
        "node_count": 1,
        "nodes": ["gpu60"],
    }
    text = _invoke(str(directory)).output
    assert "gpu07: 525.85.12; gpu42: 525.85.12" in text
    assert "FAIL error finding gpu.mig_enabled on 1 node(s): gpu60" in text
    assert text.rstrip().endswith("Result: FAIL (64 node(s))")


def test_allow_accepts_a_known_difference_but_not_an_error_finding(tmp_path: Path) -> None:
    docs = {f"n{i}": node_document() for i in range(4)}
    docs["n2"] = node_document(driver="550.54.15")
    write_nodes(tmp_path, docs)
    assert _invoke(str(tmp_path)).exit_code == 1
    code, document = _json(str(tmp_path), "--allow", "driver")
    driver = next(f for f in document["data"]["facts"] if f["fact"] == "driver")
    assert code == 0 and driver["drifted"] and driver["allowed"]
    assert "allowed" in _invoke(str(tmp_path), "--allow", "driver").output
    # an error finding on one node fails the fleet even when its drift is accepted
    docs["n3"] = node_document(findings=(("driver.too_old", "error"),))
    write_nodes(tmp_path, docs)
    assert _invoke(str(tmp_path), "--allow", "driver", "--allow", "findings").exit_code == 1
    unknown = _invoke(str(tmp_path), "--allow", "colour")
    assert unknown.exit_code == 2 and "'colour' is not one of" in unknown.output


def test_findings_are_grouped_by_check_id_worst_first(tmp_path: Path) -> None:
    warn = ("gpu.memory_held", "warning")
    docs = {
        "a": node_document(findings=(warn,)),
        "b": node_document(findings=(warn, ("system.low_disk", "info"))),
        "c": node_document(findings=(("gpu.memory_held", "error"),)),
    }
    write_nodes(tmp_path, docs)
    report = fleet_report([tmp_path])
    assert [(g.id, g.severity, g.node_count, g.nodes) for g in report.findings] == [
        ("gpu.memory_held", "error", 3, ("a", "b", "c")),
        ("system.low_disk", "info", 1, ("b",)),
    ]
    findings = next(f for f in report.facts if f.fact == "findings")
    assert findings.majority == "gpu.memory_held" and findings.differing == ()


def test_expected_nodes_without_a_document_are_missing(tmp_path: Path) -> None:
    write_nodes(tmp_path, {n: node_document() for n in ("gpu01", "gpu02", "gpu04")})
    code, document = _json(str(tmp_path), "--nodelist", "gpu[01-04]", "--hosts", "login1")
    data = document["data"]
    assert code == 1
    assert data["missing"] == ["login1", "gpu03"]
    assert data["problems"] == ["2 expected node(s) sent no document: login1, gpu03"]
    code, document = _json(str(tmp_path), "--hosts", "gpu01.cluster.local,gpu02")
    assert code == 0 and document["data"]["unexpected"] == ["gpu04"]
    bad = _invoke(str(tmp_path), "--nodelist", "gpu[01-")
    assert bad.exit_code == 2 and "malformed Slurm node list 'gpu[01-'" in bad.output


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{", "not JSON"),
        ('{"schema": "dlsetup.smoke", "data": {}}', "not a dlsetup.doctor document"),
        ('{"schema": "dlsetup.doctor", "data": []}', "its data is not an object"),
        (
            '{"schema": "dlsetup.doctor", "data": {"nvidia": {"gpus": "none"}}}',
            "nvidia.gpus is not a list",
        ),
        ('{"schema": "dlsetup.doctor", "data": {"findings": [{"id": 1}]}}', "a finding lacks"),
    ],
)
def test_a_malformed_document_exits_2_naming_the_file(
    tmp_path: Path, content: str, why: str
) -> None:
    write_nodes(tmp_path, {"good": node_document()})
    bad = tmp_path / "doctor-bad.json"
    bad.write_text(content, encoding="utf-8")
    result = _invoke(str(tmp_path))
    assert result.exit_code == 2
    error = next(line for line in result.output.splitlines() if line.startswith("Error: "))
    assert str(bad) in error and why in error
    code, document = _json(str(tmp_path))
    assert code == 2 and document["schema"] == "dlsetup.error"


def test_two_documents_of_one_node_and_an_empty_directory_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    write_nodes(tmp_path / "a", {"n1": node_document()})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "n1.json").write_text(json.dumps(node_document()), encoding="utf-8")
    result = _invoke(str(tmp_path / "a"), str(tmp_path / "b"))
    assert result.exit_code == 2 and "two documents for node n1" in result.output
    (tmp_path / "empty").mkdir()
    result = _invoke(str(tmp_path / "empty"))
    assert result.exit_code == 2 and "holds no *.json file" in result.output


def test_a_tie_is_marked_and_the_first_nodes_value_leads(tmp_path: Path) -> None:
    write_nodes(tmp_path, {"a": node_document(gpus=4), "b": node_document(gpus=8)})
    count = next(f for f in fleet_report([tmp_path]).facts if f.fact == "gpu_count")
    assert (count.majority, count.tie, count.differing[0].node) == ("4", True, "b")


def test_real_doctor_documents_of_identical_nodes_pass(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dlsetup", "doctor", "--json", "--no-frameworks"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(out.stdout)["schema"] == "dlsetup.doctor", out.stderr
    for node in ("node1", "node2"):  # the same machine twice, named as two nodes would be
        document = json.loads(out.stdout)
        document["data"]["system"]["hostname"] = node
        (tmp_path / f"doctor-{node}.json").write_text(json.dumps(document), encoding="utf-8")
    code, document = _json(str(tmp_path), "--hosts", "node1,node2")
    facts = {f["fact"]: f for f in document["data"]["facts"]}
    # the real document has no GPU here; --no-frameworks: the probes' reason, not a bare gap
    assert facts["gpu_model"]["majority"] == "no GPU"
    assert facts["torch"]["majority"] == facts["nccl"]["majority"] == "n/a (skipped)"
    severities = {g["severity"] for g in document["data"]["findings"]}
    assert code == (1 if "error" in severities else 0)
    assert not any(f["drifted"] for f in facts.values())


def test_the_fact_table_the_option_and_the_schema_agree() -> None:
    schema = load_schema("dlsetup.fleet-report")
    assert FACT_CHOICES == FACT_NAMES
    assert tuple(schema["$defs"]["fact"]["properties"]["fact"]["enum"]) == FACT_NAMES
