"""tools/refresh_compat.py against recorded responses of its sources (tests/compat/recorded/):
new rows appear with their facts and sources, changed and removed rows are reported and applied
only when accepted, and a source that cannot be read leaves its rows as they are and says so."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dlsetup.compat import DATA_FILE
from dlsetup.compat.model import parse_knowledge_base
from dlsetup.errors import KnowledgeBaseError
from tests.support.proc import REPO
from tools import refresh_compat as rc

RECORDED = Path(__file__).parent / "recorded"
TODAY = "2026-11-27"
SHIPPED = (REPO / DATA_FILE).read_text("utf-8")
TORCH_JSON = "https://pypi.org/pypi/torch/json"
TF_JSON = "https://pypi.org/pypi/tensorflow/json"
CU126 = "https://download.pytorch.org/whl/cu126/torch/"
CU130 = "https://download.pytorch.org/whl/cu130/torch/"


def with_urls(urls: dict[str, bytes | None] | None = None) -> Callable[[str], bytes]:
    """The recorded responses, with the URLs of ``urls`` answered otherwise (None:
    unreachable)."""
    recorded = rc.recorded_fetcher(RECORDED)
    table = dict(urls or {})

    def fetch(url: str) -> bytes:
        if url in table:
            body = table[url]
            if body is None:
                raise rc.Unreachable(f"test: {url} unreachable")
            return body
        return recorded(url)

    return fetch


def without_2_15(text: str = SHIPPED) -> str:
    """The shipped compat.yaml as it was before torch 2.15 was added (its row removed)."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith('    "2.15": {'))
    end = start + 1
    while lines[end].startswith("             "):
        end += 1
    return "\n".join(lines[:start] + lines[end:])


def refresh(text: str, fetch: Callable[[str], bytes] | None = None) -> rc.Diff:
    return rc.refresh(rc._yaml_load(text), fetch or with_urls(), TODAY)


def rows(diff: rc.Diff, change: str) -> dict[str, rc.Row]:
    return {r.id: r for r in diff.rows if r.change == change}


def source(diff: rc.Diff, url: str) -> rc.SourceRead:
    return next(s for s in diff.sources if s.url == url)


def kb_of(text: str) -> Any:
    return parse_knowledge_base(rc._yaml_load(text))


# -- a new release --------------------------------------------------------------------------------


def test_a_new_pytorch_release_is_a_new_row_with_its_python_range_and_cuda_variants() -> None:
    before = without_2_15()
    assert "2.15" not in kb_of(before).torch.releases
    diff = refresh(before)
    new = rows(diff, "new")["pytorch.releases.2.15"]
    assert new.new == {
        "python_min": "3.11",  # PyPI: cp311 .. cp315 wheels, requires_python >=3.11
        "python_max": "3.15",
        "released": "2026-10-28",
        "pypi_default": "cu132",  # info.requires_dist: cuda-toolkit[...]==13.2.2
        "source": ["pypi_torch", "pt_wheel_index_read"],
        "variants": {"cu130": None, "cu132": None},  # the index pages that list 2.15 wheels
    }
    assert new.source.url == TORCH_JSON and new.source.read_on == TODAY
    report = rc.render_report(diff)
    assert "New rows (added by --apply): 1\n  pytorch.releases.2.15\n" in report
    assert f"from {TORCH_JSON}, read {TODAY}" in report

    after, applied = rc.apply(before, diff)
    assert applied == ["pytorch.releases.2.15"]
    release = kb_of(after).torch.releases["2.15"]
    assert (release.python_min, release.python_max, release.released) == (
        "3.11",
        "3.15",
        "2026-10-28",
    )
    assert dict(release.variants) == {"cu130": None, "cu132": None}  # arch lists: not invented
    assert not release.has_variant_facts
    assert kb_of(after).refreshed == TODAY
    # Only lines were added (the row, its sources) and refreshed: changed: no hand fact touched.
    removed = set(before.split("\n")) - set(after.split("\n"))
    assert all(line.startswith("refreshed:") for line in removed), removed
    assert re.search(r"^  pypi_torch: \"PyPI JSON API https://pypi.org/pypi/torch/json, read "
                     r"2026-11-27", after, flags=re.MULTILINE)  # fmt: skip


def test_the_shipped_data_is_up_to_date_with_the_recorded_pypi() -> None:
    diff = refresh(SHIPPED)
    assert "pytorch.releases.2.15" not in rows(diff, "new")
    assert not [r for r in diff.rows if r.id.startswith("tensorflow.")]
    assert "companions.torchaudio.last" in diff.confirmed  # 2.11 is still PyPI's newest
    assert "tensorflow.releases.2.21.cuda" in diff.confirmed  # and-cuda: cuda-runtime >=12.5


# -- changed and removed rows: reported, applied only when accepted ------------------------------


def with_release_md_python_max() -> str:
    """The data as it was before 2.13/2.14's python_max followed PyPI: 3.15 from RELEASE.md."""
    text = SHIPPED
    for release in ("2.13", "2.14"):
        old = f'"{release}": {{python_min: "3.10", python_max: "3.14",'
        assert text.count(old) == 1
        text = text.replace(old, f'"{release}": {{python_min: "3.10", python_max: "3.15",')
    return text


def test_a_changed_row_is_reported_and_not_applied_unless_accepted() -> None:
    before = with_release_md_python_max()
    diff = refresh(before)
    changed = rows(diff, "changed")
    # RELEASE.md said 2.13 supports up to 3.15; PyPI has wheels up to cp314 only.
    row = changed["pytorch.releases.2.13.python_max"]
    assert (row.old, row.new) == ("3.15", "3.14")
    report = rc.render_report(diff)
    assert (
        '  pytorch.releases.2.13.python_max\n    data:   "3.15"\n    source: "3.14"\n'
        f"    from {TORCH_JSON}, read {TODAY}\n" in report
    )
    kept, _ = rc.apply(before, diff)
    assert kb_of(kept).torch.releases["2.13"].python_max == "3.15"  # not applied silently
    taken, applied = rc.apply(before, diff, ["pytorch.releases.2.13.python_max"])
    assert "pytorch.releases.2.13.python_max" in applied
    kb = kb_of(taken)
    assert kb.torch.releases["2.13"].python_max == "3.14"
    assert "pypi_torch" in kb.torch.releases["2.13"].sources  # the new value cites its source
    assert kb.torch.releases["2.14"].python_max == "3.15"  # the other changed row stays
    assert "[accepted]" in rc.render_report(diff, ["pytorch.releases.2.13.python_max"])


def test_the_shipped_python_ranges_follow_pypi_wheels_and_cite_both_sources() -> None:
    # PyPI (the artifacts users install) has 2.13/2.14 wheels up to cp314 only, while RELEASE.md
    # lists 3.15: the data follows the wheels and cites both, with a note saying why.
    diff = refresh(SHIPPED)
    assert not [r for r in diff.rows if r.id.endswith(".python_max")]
    kb = kb_of(SHIPPED)
    for release in ("2.13", "2.14"):
        entry = kb.torch.releases[release]
        assert entry.python_max == "3.14"
        assert {"pt_release_md", "pypi_torch"} <= set(entry.sources)
    assert 'python_note: "RELEASE.md lists 3.15; PyPI has 2.13 wheels' in SHIPPED


def test_a_removed_row_is_reported_and_not_applied_unless_accepted() -> None:
    page = (RECORDED / "index-cu126.html").read_text("utf-8")
    without_2_14 = "\n".join(line for line in page.split("\n") if "torch-2.14." not in line)
    diff = refresh(SHIPPED, with_urls({CU126: without_2_14.encode()}))
    removed = rows(diff, "removed")
    row = removed["pytorch.releases.2.14.variants.cu126"]
    assert row.old == "5.0;6.0;7.0;7.5;8.0;8.6;9.0" and row.new is None
    assert f"{CU126} has no 2.14 wheel" in rc.render_report(diff)
    kept, _ = rc.apply(SHIPPED, diff)
    assert "cu126" in kb_of(kept).torch.releases["2.14"].variants
    gone, _ = rc.apply(SHIPPED, diff, ["pytorch.releases.2.14.variants.cu126"])
    assert "cu126" not in kb_of(gone).torch.releases["2.14"].variants
    assert "cu130" in kb_of(gone).torch.releases["2.14"].variants


def test_a_release_pypi_no_longer_lists_is_a_removed_row() -> None:
    document = json.loads((RECORDED / "pypi-torch.json").read_bytes())
    for version in [v for v in document["releases"] if v.startswith("2.1.")]:
        del document["releases"][version]
    diff = refresh(SHIPPED, with_urls({TORCH_JSON: json.dumps(document).encode()}))
    assert rows(diff, "removed")["pytorch.releases.2.1"].old["python_min"] == "3.8"
    kept, _ = rc.apply(SHIPPED, diff)
    assert "2.1" in kb_of(kept).torch.releases


def test_accepting_a_row_that_is_not_in_the_diff_is_refused() -> None:
    diff = refresh(SHIPPED)
    with pytest.raises(ValueError, match="not a changed or removed row"):
        rc.apply(SHIPPED, diff, ["pytorch.releases.2.15"])


# -- sources that cannot be read ------------------------------------------------------------------


def test_an_unreachable_index_leaves_its_rows_untouched_and_says_so() -> None:
    before = without_2_15()
    diff = refresh(before, with_urls({CU126: None, CU130: None}))
    assert source(diff, CU130).status == "unreachable"
    report = rc.render_report(diff)
    assert (
        f"  [unreachable] {CU130} (test: {CU130} unreachable); its rows are kept as they are"
        in report
    )
    # No removed variant is inferred from a page that was not read ...
    assert not [r for r in diff.rows if r.id.endswith((".cu126", ".cu130"))]
    # ... and the new release lists only the variants of the pages that were.
    assert rows(diff, "new")["pytorch.releases.2.15"].new["variants"] == {"cu132": None}
    after, _ = rc.apply(before, diff)
    kb = kb_of(after)
    assert dict(kb.torch.releases["2.14"].variants) == dict(
        kb_of(before).torch.releases["2.14"].variants
    )


def test_unreachable_pypi_gives_no_pytorch_rows_and_keeps_every_one() -> None:
    diff = refresh(SHIPPED, with_urls({TORCH_JSON: None}))
    assert source(diff, TORCH_JSON).status == "unreachable"
    assert not [
        r for r in diff.rows if r.id.startswith("pytorch.releases") and "variants" not in r.id
    ]
    after, _ = rc.apply(SHIPPED, diff)

    def pythons(text: str) -> dict[str, tuple[str, str]]:
        return {k: (r.python_min, r.python_max) for k, r in kb_of(text).torch.releases.items()}

    assert pythons(after) == pythons(SHIPPED)  # (the index pages still add 2.15's variants)


def test_when_nothing_can_be_read_the_data_is_left_as_it_was() -> None:
    def unreachable(url: str) -> bytes:
        raise rc.Unreachable("offline")

    diff = refresh(SHIPPED, unreachable)
    assert {s.status for s in diff.sources} == {"unreachable"}
    assert diff.rows == []
    after, applied = rc.apply(SHIPPED, diff)
    assert (after, applied) == (SHIPPED, [])  # not even refreshed: nothing was checked


def test_a_truncated_pypi_response_is_malformed_and_its_rows_kept() -> None:
    truncated = (RECORDED / "pypi-torch.truncated.json").read_bytes()
    diff = refresh(SHIPPED, with_urls({TORCH_JSON: truncated}))
    read = source(diff, TORCH_JSON)
    assert read.status == "malformed" and read.detail.startswith("not JSON")
    assert not [r for r in diff.rows if r.source.url == TORCH_JSON]


def test_a_partial_pypi_response_skips_the_broken_entries_and_says_which() -> None:
    document = json.loads((RECORDED / "pypi-torch.json").read_bytes())
    document["releases"]["2.15.0"] = "not a list"
    document["releases"]["2.14.0"] = [{"filename": "torch-2.14.0.tar.gz", "yanked": False}]
    document["releases"]["2.14.1"] = [{"filename": "x.whl", "yanked": True}]  # yanked: skipped
    before = without_2_15(with_release_md_python_max())
    diff = refresh(before, with_urls({TORCH_JSON: json.dumps(document).encode()}))
    read = source(diff, TORCH_JSON)
    assert read.status == "partial"
    assert "release 2.15.0: files are not a list" in read.detail
    assert "release 2.14.0: a file has no upload_time_iso_8601" in read.detail
    assert "pytorch.releases.2.15" not in rows(diff, "new")  # nothing made up for it
    assert "pytorch.releases.2.14" not in rows(diff, "removed")  # partial: nothing removed
    assert "pytorch.releases.2.13.python_max" in rows(diff, "changed")  # the rest still compared


@pytest.mark.parametrize(
    "body", [b"{}", b"[]", b'{"info": {}, "releases": []}', b"<html>503</html>"]
)
def test_pypi_answers_of_the_wrong_shape_are_malformed(body: bytes) -> None:
    diff = refresh(SHIPPED, with_urls({TORCH_JSON: body}))
    assert source(diff, TORCH_JSON).status == "malformed"


def test_an_error_page_for_an_index_is_malformed_and_its_rows_kept() -> None:
    forbidden = (RECORDED / "index-forbidden.html").read_bytes()
    diff = refresh(SHIPPED, with_urls({CU126: forbidden}))
    assert source(diff, CU126).status == "malformed"
    assert not [r for r in diff.rows if r.id.endswith(".cu126")]


# -- TensorFlow, companions, NVIDIA, conda-forge ----------------------------------------------------


def _tf_with_release(version: str, day: str) -> bytes:
    document = json.loads((RECORDED / "pypi-tensorflow.json").read_bytes())
    template = document["releases"]["2.21.0"]
    document["releases"][version] = [
        {**f, "filename": f["filename"].replace("2.21.0", version), "upload_time_iso_8601": day}
        for f in template
    ]
    document["info"]["version"] = version
    return json.dumps(document).encode()


def test_the_newest_tensorflow_release_is_complete_from_its_and_cuda_extra() -> None:
    diff = refresh(
        SHIPPED, with_urls({TF_JSON: _tf_with_release("2.22.0", "2027-01-05T10:00:00Z")})
    )
    row = rows(diff, "new")["tensorflow.releases.2.22"]
    assert row.complete
    assert row.new == {
        "python_min": "3.10",
        "python_max": "3.13",
        "released": "2027-01-05",
        "cuda": "12.5",
        "cudnn": "9.3",
        "source": ["pypi_tensorflow"],
    }
    after, applied = rc.apply(SHIPPED, diff)
    assert "tensorflow.releases.2.22" in applied
    assert kb_of(after).tensorflow.releases["2.22"].cuda == "12.5"


def test_an_older_unknown_tensorflow_release_is_reported_incomplete_and_not_applied() -> None:
    text = SHIPPED.replace(
        '    "2.19": {python_min: "3.9", python_max: "3.12", cuda: "12.5", cudnn: "9.3", source: tf_source}\n',
        "",
    )
    assert text != SHIPPED
    diff = refresh(text)
    row = rows(diff, "new")["tensorflow.releases.2.19"]
    assert not row.complete
    assert "[incomplete: not applied]" in rc.render_report(diff)
    after, applied = rc.apply(text, diff)
    assert "tensorflow.releases.2.19" not in applied
    assert "2.19" not in kb_of(after).tensorflow.releases


def test_a_new_torchvision_release_is_reported_for_pairing_by_hand() -> None:
    document = json.loads((RECORDED / "pypi-torchvision.json").read_bytes())
    document["releases"]["0.30.0"] = [
        {**f, "upload_time_iso_8601": "2027-01-20T00:00:00Z"}
        for f in document["releases"]["0.29.2"]
    ]
    url = "https://pypi.org/pypi/torchvision/json"
    diff = refresh(SHIPPED, with_urls({url: json.dumps(document).encode()}))
    row = rows(diff, "new")["companions.torchvision.pairs.?=0.30"]
    assert not row.complete and "torch>=2.14.0" in row.note


def test_nvidia_table_new_and_changed_toolkits() -> None:
    page = (RECORDED / "nvidia-toolkit-drivers.html").read_text("utf-8")
    newer = '<tr class="row-odd"><td><p>CUDA 13.2 GA</p></td>\n<td><p>&gt;=595.01.01</p></td>\n<td><p>N/A</p></td>\n</tr>\n'
    page = page.replace("<tbody>\n", "<tbody>\n" + newer).replace(
        "&gt;=550.54.14", "&gt;=550.54.15"
    )
    diff = refresh(SHIPPED, with_urls({rc.NVIDIA_URL: page.encode()}))
    assert rows(diff, "new")["cuda_toolkit_drivers.13.2"].new == [
        "13.2",
        "13.2 GA",
        "595.01.01",
        None,
    ]
    changed = rows(diff, "changed")["cuda_toolkit_drivers.12.4"]
    assert (changed.old[2], changed.new[2]) == ("550.54.14", "550.54.15")
    after, _ = rc.apply(SHIPPED, diff)
    kb = kb_of(after)
    assert kb.toolkit_drivers[-1].cuda == "13.2"
    assert next(r for r in kb.toolkit_drivers if r.cuda == "12.4").linux == "550.54.14"  # kept
    assert "cuda_toolkit_table_read" in kb.sources


def test_the_recorded_nvidia_table_confirms_every_row() -> None:
    diff = refresh(SHIPPED)
    assert not [r for r in diff.rows if r.id.startswith("cuda_toolkit_drivers")]
    assert "cuda_toolkit_drivers.13.1" in diff.confirmed


def test_a_new_conda_forge_release_is_reported_for_reading_by_hand() -> None:
    url = rc.CONDA_FORGE_URL.format(feedstock="pytorch-cpu-feedstock", path="recipe/meta.yaml")
    diff = refresh(SHIPPED, with_urls({url: b'{% set version = "2.15.0" %}\n'}))
    row = rows(diff, "changed")["conda_forge.frameworks.pytorch.release"]
    assert (row.old, row.new, row.complete) == ("2.13.0", "2.15.0", False)
    with pytest.raises(ValueError, match="edit it by hand"):
        rc.apply(SHIPPED, diff, ["conda_forge.frameworks.pytorch.release"])


# -- the result is validated; the command line ------------------------------------------------------


def test_a_result_that_does_not_validate_is_refused() -> None:
    diff = refresh(without_2_15())
    row = rows(diff, "new")["pytorch.releases.2.15"]
    broken = rc.Row("new", row.id, None, {**row.new, "python_min": 3.11}, row.source)
    diff.rows = [broken]
    with pytest.raises(KnowledgeBaseError, match="python_min"):
        rc.apply(without_2_15(), diff)


def test_command_line_report_and_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "compat.yaml"
    data.write_text(without_2_15(), "utf-8")
    report = tmp_path / "diff.txt"
    args = ["--data", str(data), "--recorded", str(RECORDED), "--today", TODAY]
    assert rc.main([*args, "--report", str(report)]) == 1  # changed rows wait for review
    assert data.read_text("utf-8") == without_2_15()  # a report writes nothing
    assert "pytorch.releases.2.15" in report.read_text("utf-8")
    assert rc.main([*args, "--apply"]) == 1
    assert "2.15" in kb_of(data.read_text("utf-8")).torch.releases
    out = capsys.readouterr().out
    assert "Applied 1 row(s) to" in out and "pytorch.releases.2.15" in out
    with pytest.raises(SystemExit):
        rc.main([*args, "--accept", "pytorch.releases.2.13.python_max"])  # needs --apply


# -- docs -----------------------------------------------------------------------------------------


def test_doctor_md_source_list_is_generated_from_the_data() -> None:
    doc = (REPO / "docs" / "doctor.md").read_text("utf-8")
    generated = rc.sources_markdown(rc._yaml_load(SHIPPED))
    assert rc.replace_docs_section(doc, generated) == doc, (
        "docs/doctor.md's source list is stale: run python -m tools.refresh_compat --docs"
    )
    assert (
        "| `pypi_torch` |" in generated and "refreshed from its sources on 2026-11-27" in generated
    )


@pytest.mark.network
def test_live_pypi_knows_every_release_the_data_has() -> None:
    """The real PyPI JSON API (skips itself offline): the parser still reads it, and no release
    the data knows has disappeared from it."""
    try:
        rc.fetch_url(TORCH_JSON, timeout=20)
    except rc.Unreachable as exc:
        pytest.skip(f"pypi.org is not reachable: {exc}")
    diff = rc.refresh(rc._yaml_load(SHIPPED), rc.fetch_url)
    for url in (TORCH_JSON, TF_JSON):
        assert source(diff, url).status == "ok", source(diff, url).detail
    assert not [r for r in diff.rows if r.change == "removed" and r.source.url == TORCH_JSON]
    assert "pytorch.releases.2.15.python_max" in diff.confirmed


def test_a_cuda_line_added_on_conda_forge_is_reported_for_reading_by_hand() -> None:
    url = rc.CONDA_FORGE_URL.format(feedstock="pytorch-cpu-feedstock", path="README.md")
    readme = (RECORDED / "cf-pytorch-readme.md").read_text("utf-8")
    assert "pytorch.platforms.linux-64 (CUDA lines)" in " ".join(
        c.replace("conda_forge.frameworks.", "") for c in refresh(SHIPPED).confirmed
    )
    variant = "linux_64_blas_implmklc_compiler_version14c_stdlib_version2.28channel_targets"
    newer = readme.replace(
        f"{variant}conda-forge_maincuda_compilercuda-nvcccuda_compiler_version13.0",
        f"{variant}conda-forge_maincuda_compilercuda-nvcccuda_compiler_version13.2",
    )
    assert newer != readme
    diff = refresh(SHIPPED, with_urls({url: newer.encode()}))
    row = rows(diff, "changed")["conda_forge.frameworks.pytorch.platforms.linux-64"]
    assert (row.old, row.new, row.complete) == (
        [None, "12.9", "13.0"],
        [None, "12.9", "13.2"],
        False,
    )
    assert "[incomplete: not applied]" in rc.render_report(diff)
    after, _ = rc.apply(SHIPPED, diff)
    lines = kb_of(after).conda_forge.frameworks["pytorch"].platforms["linux-64"]
    assert [line.cuda for line in lines] == ["13.0", "12.9", None]  # kept


def test_a_feedstock_readme_without_variants_is_malformed() -> None:
    url = rc.CONDA_FORGE_URL.format(feedstock="tensorflow-feedstock", path="README.md")
    diff = refresh(SHIPPED, with_urls({url: b"About tensorflow-feedstock\n404: Not Found\n"}))
    assert source(diff, url).status == "malformed"
    assert not [r for r in diff.rows if r.source.url == url]
