"""CUDA library facts: CUDA_VISIBLE_DEVICES, nvcc, the loader's libraries, the WSL libcuda layout.

``nvcc`` and ``ldconfig`` are stand-in executables written into ``tmp_path`` that print the text the
real tools print; the filesystem root is a temporary tree.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dlsetup.facts import Missing
from dlsetup.probes import cuda_libs
from dlsetup.probes.cuda_libs import (
    VisibleDevices,
    VisibleResolution,
    find_library,
    parse_ldconfig_cache,
    parse_nvcc_version,
    parse_visible_devices,
    probe_cuda_libs,
    probe_nvcc,
    probe_wsl_libcuda,
    resolve_visible_devices,
)

# Real `nvcc --version` output of the CUDA 12.4 toolkit.
NVCC_12_4 = """\
nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2024 NVIDIA Corporation
Built on Thu_Mar_28_02:18:24_PDT_2024
Cuda compilation tools, release 12.4, V12.4.131
Build cuda_12.4.r12.4/compiler.34097967_0
"""

# Real `nvcc --version` output of the CUDA 11.8 toolkit.
NVCC_11_8 = """\
nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2022 NVIDIA Corporation
Built on Wed_Sep_21_10:33:58_PDT_2022
Cuda compilation tools, release 11.8, V11.8.89
Build cuda_11.8.r11.8/compiler.31833905_0
"""


def write_tool(directory: Path, name: str, body: str) -> Path:
    """An executable shell script ``directory/name`` (its commands by absolute path: the tests
    run it with a ``PATH`` that holds only the stand-in tools)."""
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / name
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(0o755)
    return tool


def printing_tool(directory: Path, name: str, text: str, status: int = 0) -> Path:
    (directory / f"{name}.out").parent.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.out").write_text(text)
    cat = shutil.which("cat")
    return write_tool(directory, name, f'{cat} "{directory / f"{name}.out"}"\nexit {status}\n')


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF")
    return path


def link(path: Path, target: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


# ----------------------------------------------------------------- CUDA_VISIBLE_DEVICES ----


def test_unset_visible_devices_hides_nothing() -> None:
    assert parse_visible_devices(None) == VisibleDevices(raw=Missing("unset"))
    assert parse_visible_devices(None).hides_all is False


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_visible_devices_hides_every_gpu(value: str) -> None:
    devices = parse_visible_devices(value)
    assert devices.hides_all is True
    assert devices.visible == ()
    assert devices.raw == value


def test_index_list_is_visible_in_order() -> None:
    devices = parse_visible_devices("2,0")
    assert devices.indices == (2, 0)
    assert devices.visible == ("2", "0")
    assert devices.hides_all is False
    assert devices.invalid == ()


def test_uuid_and_mig_entries_are_kept_apart_from_indices() -> None:
    devices = parse_visible_devices("GPU-8932f937-d72c-4106-c12f-20bd9faed9f6,MIG-1c7e,1")
    assert devices.uuids == ("GPU-8932f937-d72c-4106-c12f-20bd9faed9f6", "MIG-1c7e")
    assert devices.indices == (1,)


def test_first_invalid_entry_ends_the_visible_list() -> None:
    devices = parse_visible_devices("0,2,-1,1")
    assert devices.visible == ("0", "2")
    assert devices.invalid == ("-1",)
    assert devices.ignored == ("-1", "1")
    assert devices.hides_all is False


@pytest.mark.parametrize("value", ["-1", "NoDevFiles", "none"])
def test_an_invalid_first_entry_hides_every_gpu(value: str) -> None:
    devices = parse_visible_devices(value)
    assert devices.hides_all is True
    assert devices.invalid == (value,)


def test_whitespace_around_entries_is_stripped() -> None:
    assert parse_visible_devices(" 1 , 3 ").indices == (1, 3)


def test_probe_reports_visible_devices_from_the_given_environment(tmp_path: Path) -> None:
    facts = probe_cuda_libs({"PATH": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}, root=tmp_path)
    assert facts.visible_devices.hides_all is True


UUIDS = (
    "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6",
    "GPU-8932aaaa-0000-4000-8000-000000000001",
    "GPU-1d6b5c3e-0000-4000-8000-000000000002",
)


def test_unset_visible_devices_resolves_to_every_gpu() -> None:
    assert resolve_visible_devices(parse_visible_devices(None), UUIDS) == VisibleResolution(
        gpu_indices=(0, 1, 2)
    )


def test_index_past_the_last_gpu_ends_the_list_like_cuda() -> None:
    resolved = resolve_visible_devices(parse_visible_devices("2,5,0"), UUIDS)
    assert resolved.gpu_indices == (2,)
    assert resolved.unmatched == ("5", "0")
    assert resolved.hides_all is False


def test_only_a_nonexistent_gpu_hides_every_gpu() -> None:
    resolved = resolve_visible_devices(parse_visible_devices("3"), UUIDS)
    assert resolved.gpu_indices == ()
    assert resolved.hides_all is True


def test_uuid_prefix_naming_exactly_one_gpu_resolves_to_it() -> None:
    resolved = resolve_visible_devices(parse_visible_devices("GPU-1d6b,GPU-8932f"), UUIDS)
    assert resolved.gpu_indices == (2, 0)
    assert resolved.unmatched == ()


def test_ambiguous_uuid_prefix_is_unmatched() -> None:
    resolved = resolve_visible_devices(parse_visible_devices("1,GPU-8932,0"), UUIDS)
    assert resolved.gpu_indices == (1,)
    assert resolved.unmatched == ("GPU-8932", "0")


def test_mig_entries_pass_through_unchecked() -> None:
    resolved = resolve_visible_devices(
        parse_visible_devices("MIG-GPU-8932f937-d72c-4106-c12f-20bd9faed9f6/1/0"), UUIDS
    )
    assert resolved.mig_entries == ("MIG-GPU-8932f937-d72c-4106-c12f-20bd9faed9f6/1/0",)
    assert resolved.hides_all is False


def test_invalid_entry_is_reported_unmatched_after_resolution() -> None:
    resolved = resolve_visible_devices(parse_visible_devices("0,-1,1"), UUIDS)
    assert resolved.gpu_indices == (0,)
    assert resolved.unmatched == ("-1", "1")


def test_empty_visible_devices_resolves_to_nothing() -> None:
    assert resolve_visible_devices(parse_visible_devices(""), UUIDS).hides_all is True


def test_gpus_listed_after_a_missing_one_are_hidden() -> None:
    resolved = resolve_visible_devices(parse_visible_devices("0,7,1,GPU-1d6b"), UUIDS)
    assert resolved.gpu_indices == (0,)
    assert resolved.reason == "index_out_of_range"
    assert resolved.unmatched == ("7", "1", "GPU-1d6b")
    assert resolved.hidden_gpus == (1, 2)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("GPU-dead", "uuid_not_found"),
        ("GPU-8932", "uuid_ambiguous"),
        ("-1", "not_a_device"),
        ("none", "not_a_device"),
        ("MIG-GPU-00000000-0000-0000-0000-000000000000/1/0", "uuid_not_found"),
    ],
)
def test_each_kind_of_unusable_first_entry_hides_everything(value: str, reason: str) -> None:
    resolved = resolve_visible_devices(parse_visible_devices(value + ",2"), UUIDS)
    assert (resolved.gpu_indices, resolved.reason, resolved.hides_all) == ((), reason, True)
    assert resolved.hidden_gpus == (2,)


def test_mig_entry_is_unusable_when_no_gpu_has_mig_mode_on() -> None:
    devices = parse_visible_devices("MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f")
    off = resolve_visible_devices(devices, UUIDS, [False, False, False])
    on = resolve_visible_devices(devices, UUIDS, [False, True, False])
    unknown = resolve_visible_devices(devices, UUIDS, [None, False, False])
    assert (off.reason, off.hides_all) == ("mig_not_enabled", True)
    assert (on.reason, on.mig_entries) == ("", ("MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f",))
    assert unknown.reason == ""


def test_old_form_mig_entry_checks_its_parent_gpu_mig_mode() -> None:
    devices = parse_visible_devices("MIG-GPU-8932f937-d72c-4106-c12f-20bd9faed9f6/1/0")
    assert resolve_visible_devices(devices, UUIDS, [False, True, True]).reason == (
        "mig_not_enabled"
    )
    assert resolve_visible_devices(devices, UUIDS, [True, False, False]).reason == ""


# -------------------------------------------------------------------------------- nvcc ----


def test_parse_nvcc_version_reads_release_and_full_version() -> None:
    assert parse_nvcc_version(NVCC_12_4) == ("12.4", "12.4.131")
    assert parse_nvcc_version(NVCC_11_8) == ("11.8", "11.8.89")
    assert parse_nvcc_version("nvcc: command not found") is None


def test_nvcc_on_path_is_run_and_its_version_parsed(tmp_path: Path) -> None:
    nvcc = printing_tool(tmp_path / "bin", "nvcc", NVCC_12_4)
    facts = probe_nvcc({"PATH": str(tmp_path / "bin")}, root=tmp_path)
    assert facts.path == str(nvcc)
    assert facts.on_path is True
    assert facts.release == "12.4"
    assert facts.version == "12.4.131"


def test_missing_nvcc_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    facts = probe_nvcc({"PATH": str(tmp_path / "bin")}, root=tmp_path)
    assert facts.path == Missing("not_found")
    assert facts.on_path is False
    assert facts.version == Missing("not_found")


def test_nvcc_under_cuda_home_is_found_off_path(tmp_path: Path) -> None:
    home = tmp_path / "cuda-11.8"
    nvcc = printing_tool(home / "bin", "nvcc", NVCC_11_8)
    facts = probe_nvcc({"PATH": "", "CUDA_HOME": str(home)}, root=tmp_path)
    assert facts.path == str(nvcc)
    assert facts.on_path is False
    assert facts.release == "11.8"


def test_nvcc_in_usr_local_cuda_is_found_off_path(tmp_path: Path) -> None:
    nvcc = printing_tool(tmp_path / "usr/local/cuda/bin", "nvcc", NVCC_12_4)
    facts = probe_nvcc({"PATH": ""}, root=tmp_path)
    assert facts.path == str(nvcc)
    assert facts.version == "12.4.131"


def test_nvcc_that_fails_reports_its_error(tmp_path: Path) -> None:
    write_tool(tmp_path / "bin", "nvcc", "echo 'nvcc fatal: broken install' >&2\nexit 1\n")
    facts = probe_nvcc({"PATH": str(tmp_path / "bin")}, root=tmp_path)
    assert isinstance(facts.version, Missing)
    assert facts.version.reason == "error"
    assert facts.version.detail.endswith("exited 1: nvcc fatal: broken install")


def test_nvcc_with_unknown_output_is_unparsable(tmp_path: Path) -> None:
    printing_tool(tmp_path / "bin", "nvcc", "something else entirely\n")
    facts = probe_nvcc({"PATH": str(tmp_path / "bin")}, root=tmp_path)
    assert isinstance(facts.release, Missing)
    assert facts.release.reason == "unparsable"


def test_nvcc_that_hangs_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuda_libs, "TOOL_TIMEOUT_S", 0.5)
    write_tool(tmp_path / "bin", "nvcc", f"exec {shutil.which('sleep')} 30\n")
    facts = probe_nvcc({"PATH": str(tmp_path / "bin")}, root=tmp_path)
    assert facts.version == Missing(
        "timeout", f"{tmp_path / 'bin' / 'nvcc'} --version took over 0.5 s"
    )


# --------------------------------------------------------------------------- libraries ----


def ldconfig_text(entries: list[tuple[str, str, str]]) -> str:
    lines = [f"{len(entries)} libs found in cache `/etc/ld.so.cache'"]
    lines += [f"\t{name} ({flags}) => {path}" for name, flags, path in entries]
    return "\n".join(lines) + "\n"


def test_parse_ldconfig_cache_keeps_64_bit_entries_in_order() -> None:
    text = ldconfig_text(
        [
            ("libcudnn.so.9", "libc6,x86-64", "/usr/lib/x86_64-linux-gnu/libcudnn.so.9"),
            ("libcudnn.so.9", "libc6", "/usr/lib/i386-linux-gnu/libcudnn.so.9"),
            ("libcuda.so.1", "libc6,AArch64", "/usr/lib/aarch64-linux-gnu/libcuda.so.1"),
        ]
    )
    assert parse_ldconfig_cache(text, only_64bit=True) == [
        ("libcudnn.so.9", "/usr/lib/x86_64-linux-gnu/libcudnn.so.9"),
        ("libcuda.so.1", "/usr/lib/aarch64-linux-gnu/libcuda.so.1"),
    ]
    assert len(parse_ldconfig_cache(text, only_64bit=False)) == 3


def test_cudart_on_ld_library_path_reports_version_from_the_real_file(tmp_path: Path) -> None:
    lib = tmp_path / "cuda/lib64"
    touch(lib / "libcudart.so.12.4.127")
    link(lib / "libcudart.so.12", "libcudart.so.12.4.127")
    link(lib / "libcudart.so", "libcudart.so.12")
    facts = find_library("cudart", [str(lib)], [])
    assert facts.path == str(lib / "libcudart.so.12")
    assert facts.resolved == str(lib / "libcudart.so.12.4.127")
    assert facts.version == "12.4.127"
    assert facts.found_by == "LD_LIBRARY_PATH"
    assert facts.all_paths == (str(lib / "libcudart.so.12.4.127"),)


def test_library_not_anywhere_is_not_found() -> None:
    facts = find_library("cudnn", [], [("libcudart.so.12", "/x/libcudart.so.12")])
    assert facts.path == Missing("not_found")
    assert facts.found_by == ""


def test_libcudart_static_or_lookalikes_do_not_match(tmp_path: Path) -> None:
    touch(tmp_path / "libcudart_static.a")
    touch(tmp_path / "libcudart.so.bak")
    touch(tmp_path / "libcudnn_ops.so.9")
    assert find_library("cudart", [str(tmp_path)], []).path == Missing("not_found")
    assert find_library("cudnn", [str(tmp_path)], []).path == Missing("not_found")


def test_two_cudnn_versions_are_both_listed_and_ld_library_path_wins(tmp_path: Path) -> None:
    older = touch(tmp_path / "conda/lib/libcudnn.so.8")
    newer = touch(tmp_path / "system/libcudnn.so.9")
    facts = find_library("cudnn", [str(older.parent)], [("libcudnn.so.9", str(newer))])
    assert facts.path == str(older)
    assert facts.version == "8"
    assert facts.all_paths == (str(older), str(newer))


def test_probe_reads_the_loader_cache_through_ldconfig(tmp_path: Path) -> None:
    driver = tmp_path / "usr/lib/x86_64-linux-gnu"
    touch(driver / "libcuda.so.550.54.15")
    link(driver / "libcuda.so.1", "libcuda.so.550.54.15")
    cudnn = touch(tmp_path / "opt/cudnn/libcudnn.so.9.1.0")
    link(cudnn.parent / "libcudnn.so.9", "libcudnn.so.9.1.0")
    cache = ldconfig_text(
        [
            ("libcudnn.so.9", "libc6,x86-64", str(cudnn.parent / "libcudnn.so.9")),
            ("libcuda.so.1", "libc6,x86-64", str(driver / "libcuda.so.1")),
        ]
    )
    bin_dir = tmp_path / "bin"
    ldconfig = printing_tool(bin_dir, "ldconfig", cache)
    facts = probe_cuda_libs(
        {"PATH": str(bin_dir), "CUDA_HOME": "/opt/cuda", "CUDA_PATH": "/opt/cuda-path"},
        root=tmp_path,
    )
    assert facts.ldconfig == str(ldconfig)
    assert facts.libcuda.path == str(driver / "libcuda.so.1")
    assert facts.libcuda.version == "550.54.15"
    assert facts.libcuda.found_by == "ldconfig"
    assert facts.cudnn.version == "9.1.0"
    assert facts.cudart.path == Missing("not_found")
    assert facts.cuda_home == "/opt/cuda"
    assert facts.cuda_path == "/opt/cuda-path"
    assert facts.nvcc.path == Missing("not_found")


def test_probe_without_ldconfig_says_so_and_still_searches_ld_library_path(
    tmp_path: Path,
) -> None:
    lib = tmp_path / "lib"
    touch(lib / "libcudart.so.11.0")
    facts = probe_cuda_libs({"PATH": "", "LD_LIBRARY_PATH": str(lib)}, root=tmp_path)
    assert isinstance(facts.ldconfig, Missing)
    assert facts.ldconfig.reason == "not_found"
    assert facts.cudart.version == "11.0"
    assert facts.cuda_home == Missing("unset")


# --------------------------------------------------------------------------------- WSL ----


def wsl_tree(root: Path, *, symlinks: bool) -> Path:
    lib = root / "usr/lib/wsl/lib"
    touch(lib / "libcuda.so.1.1")
    touch(lib / "libnvidia-ml.so.1")
    if symlinks:
        link(lib / "libcuda.so.1", "libcuda.so.1.1")
        link(lib / "libcuda.so", "libcuda.so.1")
    else:  # what the Windows driver installs: plain copies
        touch(lib / "libcuda.so.1")
        touch(lib / "libcuda.so")
    return lib


def test_wsl_libcuda_copies_instead_of_symlinks_is_the_symlink_problem(tmp_path: Path) -> None:
    lib = wsl_tree(tmp_path, symlinks=False)
    facts = probe_wsl_libcuda(tmp_path)
    assert facts.lib_dir == str(lib)
    assert facts.libcuda_so_1_exists is True
    assert facts.libcuda_so_1_is_symlink is False
    assert facts.libcuda_so_is_symlink is False
    assert facts.libcuda_so_1_1_exists is True
    assert facts.symlink_problem is True


def test_wsl_libcuda_with_symlinks_has_no_problem(tmp_path: Path) -> None:
    wsl_tree(tmp_path, symlinks=True)
    facts = probe_wsl_libcuda(tmp_path)
    assert facts.libcuda_so_1_is_symlink is True
    assert facts.libcuda_so_is_symlink is True
    assert facts.symlink_problem is False


def test_not_wsl_has_no_wsl_lib_dir(tmp_path: Path) -> None:
    facts = probe_wsl_libcuda(tmp_path)
    assert facts.lib_dir == Missing("not_found", str(tmp_path / "usr/lib/wsl/lib"))
    assert facts.libcuda_so_1_exists is False
    assert facts.symlink_problem is False


def test_wsl_dir_without_libcuda_reports_it_missing(tmp_path: Path) -> None:
    (tmp_path / "usr/lib/wsl/lib").mkdir(parents=True)
    facts = probe_wsl_libcuda(tmp_path)
    assert facts.libcuda_so_1_exists is False
    assert facts.libcuda_so_1_is_symlink == Missing("not_found")
    assert facts.symlink_problem is False


def test_probe_on_wsl_finds_libcuda_in_the_wsl_dir_without_a_version(tmp_path: Path) -> None:
    lib = wsl_tree(tmp_path, symlinks=False)
    printing_tool(
        tmp_path / "bin",
        "ldconfig",
        ldconfig_text([("libcuda.so.1", "libc6,x86-64", str(lib / "libcuda.so.1"))]),
    )
    facts = probe_cuda_libs({"PATH": str(tmp_path / "bin")}, root=tmp_path)
    assert facts.libcuda.path == str(lib / "libcuda.so.1")
    assert facts.libcuda.version == Missing("not_in_filename", "libcuda.so.1")
    assert facts.wsl.symlink_problem is True


def test_probe_of_this_machine_agrees_with_which_and_the_environment() -> None:
    facts = probe_cuda_libs()
    on_path = shutil.which("nvcc")
    if on_path is not None:
        assert facts.nvcc.path == on_path
        assert facts.nvcc.on_path is True
    else:
        assert facts.nvcc.on_path is False
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    assert facts.visible_devices.raw == (Missing("unset") if raw is None else raw)
