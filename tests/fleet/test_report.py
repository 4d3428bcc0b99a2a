"""``dlsetup fleet report``: per-node doctor documents merged into one drift report."""

from __future__ import annotations

import json
import shlex
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
from tests.fleet.documents import (
    HGX_BUS_IDS,
    IB_NDR,
    fleet_with_three_drifts,
    node_document,
    write_nodes,
)


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
    assert facts["gpu_model"]["majority"] == "NVIDIA H100 80GB HBM3"
    assert facts["gpu_count"]["majority"] == "8"
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


def _envelope(data: object, version: object = 1) -> str:
    return json.dumps(
        {
            "schema": "dlsetup.doctor",
            "schema_version": version,
            "dlsetup_version": "0.1.0",
            "created": "2026-12-07T17:00:00Z",
            "data": data,
        }
    )


def _with(change: Any) -> str:
    document = node_document()
    change(document)
    return json.dumps(document)


def _set_hostname_object(document: dict[str, Any]) -> None:
    document["data"]["system"]["hostname"] = {"name": "gpu01"}


def _set_gpu_count_text(document: dict[str, Any]) -> None:
    document["data"]["nvidia"]["gpu_count"] = "8"


def _drop_nvidia(document: dict[str, Any]) -> None:
    del document["data"]["nvidia"]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{", "not JSON"),
        ('{"schema": "dlsetup.smoke", "data": {}}', "not a dlsetup.doctor document"),
        (
            _envelope({}, 0),
            "is schema_version 0 (written by dlsetup 0.1.0), older than this dlsetup reads",
        ),
        (
            _envelope({}, 7),
            "is schema_version 7 (written by dlsetup 0.1.0), newer than this dlsetup reads",
        ),
        (
            _envelope({}, 99),
            "is schema_version 99 (written by dlsetup 0.1.0), newer than this dlsetup reads",
        ),
        (_envelope({}, "1"), "has no integer schema_version (found '1')"),
        (_envelope({}, True), "has no integer schema_version (found True)"),
        ('{"schema": "dlsetup.doctor", "data": {}}', "has no integer schema_version (found None)"),
        (_envelope([]), "its data is not an object"),
        (_envelope({}), "document.data lacks system, nvidia, findings"),
        (_with(_drop_nvidia), "document.data lacks nvidia"),
        (_with(_set_hostname_object), "data.system.hostname must be string"),
        (_with(_set_gpu_count_text), "data.nvidia.gpu_count must be integer"),
        (
            _envelope({"system": {}, "nvidia": {"gpus": "none"}, "findings": []}),
            "data.nvidia.gpus must be array",
        ),
        (
            _envelope({"system": {}, "nvidia": {}, "findings": [{"id": 1, "severity": "error"}]}),
            "data.findings[0].id must be string",
        ),
    ],
)
def test_a_malformed_or_unreadable_document_exits_2_naming_the_file(
    tmp_path: Path, content: str, why: str
) -> None:
    write_nodes(tmp_path, {"good": node_document()})
    bad = tmp_path / "doctor-bad.json"
    bad.write_text(content, encoding="utf-8")
    result = _invoke(str(tmp_path))
    assert result.exit_code == 2, result.output
    error = next(line for line in result.output.splitlines() if line.startswith("Error: "))
    assert str(bad) in error and why in error, error
    assert "Traceback" not in result.output
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


def test_a_two_two_tie_is_named_a_tie_and_no_node_is_blamed(tmp_path: Path) -> None:
    docs = {n: node_document(driver="535.104.05") for n in ("a", "b")}
    docs |= {n: node_document(driver="550.54.15") for n in ("c", "d")}
    write_nodes(tmp_path, docs)
    report = fleet_report([tmp_path])
    driver = next(f for f in report.facts if f.fact == "driver")
    assert (driver.majority, driver.majority_nodes, driver.tie) == (
        "535.104.05 | 550.54.15",
        2,
        True,
    )
    assert {d.node for d in driver.differing} == {"a", "b", "c", "d"}
    assert report.problems == (
        "driver: no majority, a tie between 2 node(s) each: 535.104.05 on a, b; 550.54.15 on c, d",
    )
    assert report.exit_code == 1 and report.drain == ()
    assert all(v.passed for v in report.verdicts)  # which side is odd is the admin's call
    text = _invoke(str(tmp_path)).output
    assert "tie: 535.104.05 | 550.54.15" in text and "TIE" in text
    # three against two is a majority again: the two are named
    write_nodes(tmp_path, {"e": node_document(driver="535.104.05")})
    driver = next(f for f in fleet_report([tmp_path]).facts if f.fact == "driver")
    assert (driver.majority, driver.tie) == ("535.104.05", False)
    assert {d.node for d in driver.differing} == {"c", "d"}


def test_a_node_without_frameworks_or_an_older_document_is_not_drift(tmp_path: Path) -> None:
    docs = {f"n{i}": node_document() for i in range(3)}
    docs["n3"] = node_document(no_frameworks=True)  # doctor --no-frameworks: it reported nothing
    docs["n4"] = node_document(older=True)  # no gpu_count, no health section, fewer GPU fields
    write_nodes(tmp_path, docs)
    code, document = _json(str(tmp_path))
    facts = {f["fact"]: f for f in document["data"]["facts"]}
    assert code == 0, document["data"]["problems"]
    for name in ("torch", "torch_cuda", "nccl", "tensorflow", "tensorflow_cuda"):
        assert not facts[name]["drifted"] and facts[name]["differing"] == []
    assert facts["torch"]["not_reported"] == ["n3"]
    # the older document's GPU count is its GPU list, as the model row counts it: no drift
    assert facts["gpu_count"] == {**facts["gpu_count"], "majority": "8", "majority_nodes": 5}
    assert facts["xid"]["not_reported"] == ["n4"] and not facts["xid"]["drifted"]
    # the negative twin: a node whose torch probe reports another version still drifts
    write_nodes(tmp_path, {"n3": node_document(torch_version="2.4.0+cu121")})
    code, document = _json(str(tmp_path))
    assert code == 1 and "torch drifts: 1 of 5 node(s)" in document["data"]["problems"][0]


def test_drift_on_nodes_outside_the_node_list_does_not_fail(tmp_path: Path) -> None:
    docs = {f"gpu{i:02d}": node_document() for i in range(1, 5)}
    docs["login1"] = node_document(
        driver="470.82.01", gpus=0, findings=(("driver.too_old", "error"),)
    )
    write_nodes(tmp_path, docs)
    code, document = _json(str(tmp_path), "--nodelist", "gpu[01-04]")
    data = document["data"]
    assert code == 0, data["problems"]
    assert data["unexpected"] == ["login1"] and data["drain"] == []
    driver = next(f for f in data["facts"] if f["fact"] == "driver")
    assert driver["differing"] == [{"node": "login1", "value": "470.82.01"}]
    assert not driver["drifted"]
    login = next(v for v in data["verdicts"] if v["node"] == "login1")
    assert login["expected"] is False and login["passed"] is False
    assert (
        "(not expected: does not fail the report)"
        in _invoke(str(tmp_path), "--nodelist", "gpu[01-04]").output
    )
    # the same node inside the list fails it
    code, document = _json(str(tmp_path), "--nodelist", "gpu[01-04],login1")
    assert code == 1 and document["data"]["drain"][0].startswith("scontrol update nodename=login1")


def test_a_node_is_named_by_its_file_and_a_copied_document_is_caught(tmp_path: Path) -> None:
    docs = {
        "gpu01": node_document(hostname="gpu01.cluster.local"),
        "gpu02": node_document(hostname="gpu02.cluster.local"),
        "gpu03": node_document(hostname="gpu02.cluster.local"),  # gpu02's file copied
    }
    write_nodes(tmp_path, docs)
    code, document = _json(str(tmp_path), "--nodelist", "gpu[01-03]")
    data = document["data"]
    assert data["nodes"] == ["gpu01", "gpu02", "gpu03"] and data["missing"] == []
    assert [v["hostname"] for v in data["verdicts"]] == [
        "gpu01.cluster.local", "gpu02.cluster.local", "gpu02.cluster.local"
    ]  # fmt: skip
    assert code == 1 and data["problems"] == [
        "one host (gpu02.cluster.local) wrote the documents of 2 nodes: gpu02, gpu03 (a document "
        "copied under another node's name?)"
    ]


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
    # the kernel's health facts travel in the real document: no GPU on this machine's PCI bus
    assert facts["pci_gpus"]["majority"] == "0" and facts["infiniband"]["majority"] == "no port"
    assert facts["xid"]["majority"] in ("none", "n/a (not_readable)")
    severities = {g["severity"] for g in document["data"]["findings"]}
    assert code == (1 if "error" in severities else 0)
    assert not any(f["drifted"] for f in facts.values())


def test_the_fact_table_the_option_and_the_schema_agree() -> None:
    schema = load_schema("dlsetup.fleet-report")
    assert FACT_CHOICES == FACT_NAMES
    assert tuple(schema["$defs"]["fact"]["properties"]["fact"]["enum"]) == FACT_NAMES


def _sixteen_nodes_three_broken() -> dict[str, dict[str, Any]]:
    """gpu[01-16]: GPU 5 of gpu04 off the bus; XID 48 and a failed row remap on gpu09; an
    InfiniBand port down and an older driver on gpu13."""
    docs = {f"gpu{i:02d}": node_document(hostname=f"gpu{i:02d}") for i in range(1, 17)}
    docs["gpu04"] = node_document(
        hostname="gpu04", gpus=7, pci_bus_ids=tuple(b for b in HGX_BUS_IDS if b != "0000:ab:00.0")
    )
    docs["gpu09"] = node_document(
        hostname="gpu09", xids=(("0000:3a:00", 48, 1),), row_remap_failed=(2,)
    )
    docs["gpu13"] = node_document(
        hostname="gpu13", driver="525.85.12", ib=(*IB_NDR[:3], ("DOWN", "400 Gb/sec (4X NDR)"))
    )
    return docs


def test_sixteen_nodes_three_broken_give_three_exact_drain_lines(tmp_path: Path) -> None:
    write_nodes(tmp_path, _sixteen_nodes_three_broken())
    result = _invoke(str(tmp_path), "--nodelist", "gpu[01-16]", "--slurm-drain")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "# dlsetup fleet report: 3 of 16 node(s) to drain (review, then run these lines; dlsetup "
        "runs nothing)",
        "scontrol update nodename=gpu04 state=drain reason='dlsetup: missing GPU 5 (PCI "
        "0000:ab:00.0, not on the PCI bus); gpu_count 7 (fleet: 8); pci_gpus 7 (fleet: 8)'",
        "scontrol update nodename=gpu09 state=drain reason='dlsetup: GPU 2: row remap failed; "
        "XID 48 on 0000:3a:00 (x1)'",
        "scontrol update nodename=gpu13 state=drain reason='dlsetup: InfiniBand mlx5_3/1 DOWN; "
        "driver 525.85.12 (fleet: 535.104.05)'",
    ]
    code, document = _json(str(tmp_path), "--nodelist", "gpu[01-16]")
    jsonschema.validate(document, load_schema("dlsetup.fleet-report"))
    assert code == 1
    verdicts = {v["node"]: v for v in document["data"]["verdicts"]}
    assert sorted(n for n, v in verdicts.items() if not v["passed"]) == ["gpu04", "gpu09", "gpu13"]
    assert verdicts["gpu04"]["missing_gpus"] == [
        {"index": 5, "uuid": None, "pci_bus_id": "0000:ab:00.0", "state": "not on the PCI bus"}
    ]
    text = _invoke(str(tmp_path), "--nodelist", "gpu[01-16]").output
    assert "Node verdicts: 13 pass, 3 fail (drain lines: --slurm-drain)" in text
    assert "  gpu09: GPU 2: row remap failed; XID 48 on 0000:3a:00 (x1)" in text
    # --slurm-drain never runs scontrol: the healthy twin prints no line and exits 0
    healthy = tmp_path / "healthy"
    write_nodes(healthy, {f"gpu{i:02d}": node_document() for i in range(1, 17)})
    result = _invoke(str(healthy), "--slurm-drain")
    assert result.exit_code == 0 and result.output.splitlines()[1:] == []


def test_a_drain_reason_is_quoted_for_the_shell_and_cut_to_length(tmp_path: Path) -> None:
    findings = tuple((f"check.number_{i}", "error") for i in range(30))
    docs = {"a": node_document(), "b": node_document(), "it's": node_document(findings=findings)}
    write_nodes(tmp_path, docs)
    line = fleet_report([tmp_path]).drain[0]
    words = shlex.split(line)
    assert words[:4] == ["scontrol", "update", "nodename=it's", "state=drain"]
    assert words[4].startswith("reason=dlsetup: error finding check.number_0;")
    assert len(words) == 5 and len(words[4]) == len("reason=") + 200 and words[4].endswith("...")


@pytest.mark.parametrize(
    ("change", "fact", "reason"),
    [
        ({"pcie_width": 8}, "pcie_link", "GPU 0 PCIe x8 of x16"),
        ({"persistence": False}, "persistence", "persistence off (fleet: on)"),
        ({"ecc_errors": {3: 2}}, "ecc_errors", "uncorrected ECC errors GPU 3: 2"),
        ({"row_remap_failed": (1,)}, "memory_repair", "GPU 1: row remap failed"),
        ({"clock_reasons": 0x40 | 0x1}, "clocks_slowdown", "clocks held down: GPU 0: hw_thermal"),
        ({"xids": (("0000:18:00", 79, 3),)}, "xid", "XID 79 on 0000:18:00 (x3)"),
        ({"ib": (("INIT", "400 Gb/sec (4X NDR)"),) * 4}, "infiniband", "InfiniBand mlx5_0/1 INIT"),
        ({"lost": (3,)}, "gpu_count", "missing GPU 3 (PCI 0000:5d:00.0, lost)"),
        ({"gpus": 7, "pci_bus_ids": HGX_BUS_IDS}, "gpu_count", "missing a GPU (on the PCI bus, not listed by NVML)"),
        ({"gpus": 7, "nvml_bus_ids": True}, "gpu_count", "missing GPU 7 (PCI 0000:db:00.0, on the PCI bus, not listed by NVML)"),
        ({"gpus": 7, "older": True}, "gpu_count", "missing which one is not known (the document has no PCI bus ids)"),
    ],
)  # fmt: skip
def test_each_health_fault_fails_its_node_and_only_it(
    tmp_path: Path, change: dict[str, Any], fact: str, reason: str
) -> None:
    write_nodes(tmp_path, {f"n{i}": node_document() for i in range(4)})
    assert fleet_report([tmp_path]).passed  # the healthy twin
    write_nodes(tmp_path, {"n2": node_document(**change)})
    report = fleet_report([tmp_path])
    verdict = {v.node: v for v in report.verdicts}
    assert [n for n, v in verdict.items() if not v.passed] == ["n2"]
    assert any(reason in r for r in verdict["n2"].reasons), verdict["n2"].reasons
    assert report.exit_code == 1 and report.drain[0].startswith("scontrol update nodename=n2 ")


def test_a_fleet_that_agrees_on_a_fault_still_fails(tmp_path: Path) -> None:
    write_nodes(tmp_path, {f"n{i}": node_document(xids=(("0000:18:00", 79, 1),)) for i in range(3)})
    report = fleet_report([tmp_path])
    xid = next(f for f in report.facts if f.fact == "xid")
    assert not xid.drifted and xid.faulty == ("n0", "n1", "n2") and report.exit_code == 1
    assert "FAULT (3)" in _invoke(str(tmp_path)).output
    assert len(report.drain) == 3 and "node n0 health: XID 79 on 0000:18:00 (x1)" in report.problems


@pytest.mark.slow
def test_real_doctor_documents_over_the_fake_nvml_name_a_down_nvlink_and_a_lost_gpu(
    tmp_path: Path, fake_nvml_dir: Path
) -> None:
    from tests.support.fake_nvml import nvml_env, subprocess_env

    hgx = {"gpu_count": "8", "nvlinks": "18,4"}
    scenarios = {
        "gpu01": hgx,
        "gpu02": hgx | {"nvlinks_down": "0,0,0,2,0,0,0,0", "lost_gpus": "5"},
        "gpu03": hgx,
    }
    for node, scenario in scenarios.items():
        out = subprocess.run(
            [sys.executable, "-m", "dlsetup", "doctor", "--json", "--no-frameworks"],
            env=subprocess_env(nvml_env(fake_nvml_dir, **scenario)),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        document = json.loads(out.stdout)
        jsonschema.validate(document, load_schema("dlsetup.doctor"))
        (tmp_path / f"doctor-{node}.json").write_text(out.stdout, encoding="utf-8")
    gpus = json.loads((tmp_path / "doctor-gpu02.json").read_text())["data"]["nvidia"]["gpus"]
    assert gpus[3]["pci_bus_id"] == "0000:40:00.0"
    assert gpus[3]["nvlink_up"] == [True] * 16 + [False] * 2
    report = fleet_report([tmp_path])
    nvlink = next(f for f in report.facts if f.fact == "nvlink")
    assert nvlink.majority == "18/18 up"
    verdicts = {v.node: v for v in report.verdicts}
    assert verdicts["gpu01"].passed and verdicts["gpu03"].passed
    reasons = verdicts["gpu02"].reasons
    assert reasons[0] == "missing GPU 5 (lost)"
    assert "GPU 3 NVLink 16,17 down" in reasons
    assert [line.split(" reason=")[0] for line in report.drain] == [
        "scontrol update nodename=gpu02 state=drain"
    ]


def test_slurm_drain_and_json_together_are_a_usage_error(tmp_path: Path) -> None:
    write_nodes(tmp_path, {"a": node_document()})
    result = _invoke(str(tmp_path), "--slurm-drain", "--json")
    assert result.exit_code == 2 and "--slurm-drain and --json: choose one" in result.output
