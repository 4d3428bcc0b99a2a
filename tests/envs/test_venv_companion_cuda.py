"""A venv lock holds each companion of PyPI's CUDA torch to torch's CUDA build, as ``dlsetup
doctor``'s ``NAME.cuda_mismatch`` does: another CUDA major version (the companion refuses to
load) stops the lock (exit 2) before anything is installed, naming both builds and the fix; the
same major with another minor (it loads, but is not a pair PyTorch ships) is locked with a
warning in the header, ``--json`` and on stderr; a matched pair is locked and said.

The wheels are shaped like the real PyPI ones (read from the wheels themselves): PyPI's torch
2.14.1 (``cp311-cp311-manylinux_2_28_x86_64``, no local version) requires
``cuda-toolkit[cudart,...]==13.0.3``, whose ``cudart`` extra pins ``nvidia-cuda-runtime==13.0.96.*``,
and ``nvidia-*-cu13`` wheels; its ``torch/version.py`` says ``2.14.1+cu130``. PyPI's torchvision
0.29.1 / 0.29.2 and torchaudio 2.11.0 / 2.11.1 name no CUDA version in their metadata (no local
version, no ``nvidia-*`` requirement; torchaudio's only requirement is ``torch>=2.11``), but
their ``NAME/version.py`` does: torchvision ``0.29.1+cu130`` and ``0.29.2+cu132``, torchaudio
2.11.0 ``+cu130`` (a ``cp311`` wheel) and 2.11.1 ``+cu132`` (a ``py3-none`` wheel). Torch's other
requirements (filelock, sympy, ...) are left out of the stand-ins: they do not bear on the CUDA
build. The real uv resolves; the CLI runs in a subprocess; the HTTP case serves the index on
127.0.0.1 with a server that answers ``Range`` requests, as PyPI's file host does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.support.http_server import QuietHandler, serve
from tests.support.proc import run_cli
from tests.support.wheels import Wheel, build_index

LINUX = "manylinux_2_28_x86_64"
ON_LINUX = 'platform_system == "Linux"'
RUNTIME_MARKER = "(sys_platform == 'linux' and platform_machine == 'x86_64')"
CUDA_ARGS = ("--variant", "cuda", "--cuda", "13.0", "--gpu-arch", "8.9")


def _version_py(name: str, version: str) -> dict[str, bytes]:
    return {f"{name}/version.py": f"__version__ = '{version}'\ngit_version = 'abc'\n".encode()}


def _pypi_wheels(
    torchaudio: tuple[str, ...], torchvision: tuple[str, ...] = ("0.29.1+cu130",)
) -> list[Wheel]:
    """PyPI-shaped torch 2.14.1 and its CUDA 13.0 wheels, the torchvision and torchaudio
    releases named (``2.11.1+cu132``: the version and its build, as its version.py says)."""
    torch = Wheel(
        "torch",
        "2.14.1",
        (
            f"cuda-toolkit[cublas,cudart]==13.0.3; {ON_LINUX}",
            f"nvidia-cudnn-cu13==9.24.0.43; {ON_LINUX}",
            f'triton~=3.8.0; {ON_LINUX} and python_version < "3.15"',
        ),
        tag=f"cp311-cp311-{LINUX}",
        requires_python=">=3.10",
        files={"torch/version.py": b"__version__ = '2.14.1+cu130'\ncuda = '13.0'\n"},
    )
    toolkit = Wheel(  # wheels.py writes Requires-Dist lines: the extras ride on them
        "cuda-toolkit",
        "13.0.3.0",
        (
            f"nvidia-cublas==13.1.1.3.*; {RUNTIME_MARKER} and extra == 'cublas'\n"
            "Provides-Extra: cublas\nProvides-Extra: cudart",
            f"nvidia-cuda-runtime==13.0.96.*; {RUNTIME_MARKER} and extra == 'cudart'",
        ),
        tag="py2.py3-none-any",
    )
    wheels = [torch, toolkit]
    for name, version, tag in (
        ("nvidia-cublas", "13.1.1.3", f"py3-none-{LINUX}"),
        ("nvidia-cuda-runtime", "13.0.96", f"py3-none-{LINUX}"),
        ("nvidia-cudnn-cu13", "9.24.0.43", f"py3-none-{LINUX}"),
        ("triton", "3.8.0", f"cp311-cp311-{LINUX}"),
        ("pillow", "11.3.0", f"cp311-cp311-{LINUX}"),
        ("numpy", "2.4.1", f"cp311-cp311-{LINUX}"),
    ):
        wheels.append(Wheel(name, version, tag=tag))
    wheels.append(Wheel("ipykernel", "7.1.0", ("numpy>=1.24",)))
    for declared in torchvision:
        wheels.append(
            Wheel(
                "torchvision",
                declared.partition("+")[0],
                ("numpy", "torch (>=2.14.0)", "pillow (!=8.3.*,>=5.3.0)"),
                tag=f"cp311-cp311-{LINUX}",
                files=_version_py("torchvision", declared),
            )
        )
    for declared in torchaudio:
        version = declared.partition("+")[0]
        tag = f"cp311-cp311-{LINUX}" if version == "2.11.0" else f"py3-none-{LINUX}"
        wheels.append(
            Wheel(
                "torchaudio",
                version,
                ("torch>=2.11",),
                tag=tag,
                files=_version_py("torchaudio", declared),
            )
        )
    return wheels


def _lock(env: dict[str, str], out: Path, index: str, *args: str) -> tuple[int, str, str]:
    proc = run_cli(
        "lock", "pytorch", "--backend", "venv", "--platform", "linux-64", "--python-version",
        "3.11", *CUDA_ARGS, "--torch-version", "2.14", "--torch-index-url", index, "--index-url",
        index, "--output", str(out), *args, env=env,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Warning:")]


TORCHAUDIO_WARNING = (
    "linux-64: torchaudio 2.11.1 is a CUDA 13.2 build (its torchaudio/version.py says "
    "2.11.1+cu132), torch 2.14.1 is a CUDA 13.0 build (PyPI's; nvidia-cuda-runtime 13.0.96 "
    "resolved beside it): the same CUDA major version loads, but these builds are not the pair "
    "PyTorch ships and tests (dlsetup doctor warns of the installed pair: "
    "torchaudio.cuda_mismatch)"
)
TORCHAUDIO_FIX = (
    "torchaudio 2.11.0 on these sources is a CUDA 13.0 build of torchaudio 2.11, the release the "
    "knowledge base pairs with torch 2.14.1 (its torchaudio/version.py says 2.11.0+cu130): pin "
    "it, torchaudio==2.11.0, where you install with pip or uv; or lock from PyTorch's index of "
    "torch's variant, whose companions are built for its CUDA: --torch-index-url "
    "https://download.pytorch.org/whl/cu130 (or a mirror of it)"
)
#: torchaudio's entry in a lock's warnings (``lock --json``, the lock's ``[tool.dlsetup]``)
TORCHAUDIO_ENTRY = {
    "name": "torchaudio",
    "version": "2.11.1",
    "cuda": "13.2",
    "declared": "2.11.1+cu132",
    "torch": "2.14.1",
    "torch_cuda": "13.0",
    "matching": {"version": "2.11.0", "cuda": "13.0", "declared": "2.11.0+cu130"},
    "message": TORCHAUDIO_WARNING,
    "fix": TORCHAUDIO_FIX,
}


def test_pypis_pair_today_cuda_13_2_companions_beside_torch_13_0_lock_with_a_warning(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """PyPI today: torch 2.14.1 (CUDA 13.0), torchvision 0.29.2 and torchaudio 2.11.1 (CUDA
    13.2), with 0.29.1 and 2.11.0 (CUDA 13.0) beside them: what ``pip install torch torchvision
    torchaudio`` gives, and it loads (the same CUDA major). Locked as resolved, exit 0; each
    pair said as doctor says it, with the matching build found: one warning line each on
    stderr, a ``CUDA warning:`` line in the header, an entry in ``--json``'s
    ``cuda_warnings`` (the schema holds it)."""
    import json

    import jsonschema

    from dlsetup.output import load_schema

    wheels = _pypi_wheels(
        ("2.11.0+cu130", "2.11.1+cu132"), torchvision=("0.29.1+cu130", "0.29.2+cu132")
    )
    index = build_index(tmp_path / "pypi", wheels)
    out = tmp_path / "out"
    code, stdout, stderr = _lock(isolated_dirs, out, index)
    assert code == 0, (stdout, stderr)
    assert "Traceback" not in stderr
    said = _warnings(stderr)
    assert said == [
        "Warning: linux-64: torchvision 0.29.2 is a CUDA 13.2 build (its torchvision/version.py "
        "says 0.29.2+cu132), torch 2.14.1 is a CUDA 13.0 build (PyPI's; nvidia-cuda-runtime "
        "13.0.96 resolved beside it): the same CUDA major version loads, but these builds are "
        "not the pair PyTorch ships and tests (dlsetup doctor warns of the installed pair: "
        "torchvision.cuda_mismatch). Fix: torchvision 0.29.1 on these sources is a CUDA 13.0 "
        "build of torchvision 0.29, the release the knowledge base pairs with torch 2.14.1 (its "
        "torchvision/version.py says 0.29.1+cu130): pin it, torchvision==0.29.1, where you "
        "install with pip or uv; or lock from PyTorch's index of torch's variant, whose "
        "companions are built for its CUDA: --torch-index-url "
        "https://download.pytorch.org/whl/cu130 (or a mirror of it)",
        f"Warning: {TORCHAUDIO_WARNING}. Fix: {TORCHAUDIO_FIX}",
    ], stderr
    text = (out / "pylock.pytorch-cu130.toml").read_text()
    assert f"#   CUDA warning: {TORCHAUDIO_WARNING}; fix: {TORCHAUDIO_FIX}.\n" in text
    assert "#   CUDA warning: linux-64: torchvision 0.29.2 is a CUDA 13.2 build" in text
    assert "CUDA checked:" not in text and "Unchecked:" not in text
    assert 'name = "torchaudio"\nversion = "2.11.1"' in text  # pip's choice, locked as resolved
    assert 'name = "torchvision"\nversion = "0.29.2"' in text

    code, stdout, stderr = _lock(isolated_dirs, out, index, "--json", "--force")
    assert code == 0, stderr
    assert _warnings(stderr) == []  # --json carries it
    doc = json.loads(stdout)
    jsonschema.validate(doc, load_schema("dlsetup.venv-lock"))
    warned = doc["data"]["platforms"][0]["build"]["cuda_warnings"]
    assert [w["name"] for w in warned] == ["torchvision", "torchaudio"]
    assert warned[1] == TORCHAUDIO_ENTRY
    assert warned[0]["matching"] == {
        "version": "0.29.1",
        "cuda": "13.0",
        "declared": "0.29.1+cu130",
    }


def test_no_build_for_torchs_cuda_on_the_sources_warns_naming_pytorchs_index(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """Only torchaudio 2.11.1 (CUDA 13.2) on the sources: locked with the warning, no matching
    build (``matching: null``), the fix names PyTorch's index."""
    import json

    index = build_index(tmp_path / "pypi", _pypi_wheels(("2.11.1+cu132",)))
    code, stdout, stderr = _lock(isolated_dirs, tmp_path / "out", index, "--json")
    assert code == 0, (stdout, stderr)
    build = json.loads(stdout)["data"]["platforms"][0]["build"]
    (warned,) = build["cuda_warnings"]
    assert (warned["name"], warned["cuda"], warned["torch_cuda"]) == ("torchaudio", "13.2", "13.0")
    assert warned["matching"] is None
    assert warned["fix"].startswith(
        "no torchaudio 2.11 on these sources is a CUDA 13.0 build (the knowledge base pairs "
        "torchaudio 2.11 with torch 2.14.1); lock from PyTorch's index of torch's variant"
    )


def test_torchvision_of_another_cuda_major_stops_the_lock(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """torchvision 0.29.1 built for CUDA 12.6 beside torch's 13.0: it refuses to load (another
    major version), so exit 2, no lock written, the CUDA 13.0 build 0.29.0 offered."""
    wheels = _pypi_wheels(("2.11.0+cu130",), torchvision=("0.29.0+cu130", "0.29.1+cu126"))
    index = build_index(tmp_path / "pypi", wheels)
    code, stdout, stderr = _lock(isolated_dirs, tmp_path / "out", index)
    assert code == 2, (stdout, stderr)
    err = _one_line(stderr)
    assert (
        "torchvision 0.29.1 is a CUDA 12.6 build (its torchvision/version.py says 0.29.1+cu126), "
        "torch 2.14.1 is a CUDA 13.0 build"
    ) in err
    assert (
        "torchvision's compiled extension does not load beside this torch (torchvision refuses "
        "CUDA builds of another major version; dlsetup doctor: torchvision.cuda_mismatch); "
        "nothing was installed and no lock was written"
    ) in err
    assert "Warning:" not in stderr
    assert list((tmp_path / "out").glob("pylock.*")) == []
    assert (
        "Fix: torchvision 0.29.0 on these sources is a CUDA 13.0 build of torchvision 0.29, the "
        "release the knowledge base pairs with torch 2.14.1 (its torchvision/version.py says "
        "0.29.0+cu130): pin it, torchvision==0.29.0, where you install with pip or uv; or lock "
        "from PyTorch's index of torch's variant"
    ) in err


def test_a_matched_pair_is_locked_and_the_check_said(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """torchaudio 2.11.0 (CUDA 13.0) alone beside torch 2.14.1: locked, the header says what
    was read from each companion, and nothing is left unchecked."""
    index = build_index(tmp_path / "pypi", _pypi_wheels(("2.11.0+cu130",)))
    out = tmp_path / "out"
    code, _, stderr = _lock(isolated_dirs, out, index)
    assert code == 0, stderr
    text = (out / "pylock.pytorch-cu130.toml").read_text()
    assert "torchaudio" in text
    assert (
        "#   CUDA checked: torchvision 0.29.1 is a CUDA 13.0 build, as torch is (its "
        "torchvision/version.py says 0.29.1+cu130).\n"
    ) in text
    assert (
        "#   CUDA checked: torchaudio 2.11.0 is a CUDA 13.0 build, as torch is (its "
        "torchaudio/version.py says 2.11.0+cu130).\n"
    ) in text
    assert "Unchecked:" not in text


class RangeHandler(QuietHandler):
    """Serves files as PyPI's file host does: a ``Range`` request gets 206, those bytes and a
    lower-case ``content-range`` header.
    Every wheel byte sent is counted in :attr:`sent` (by file name)."""

    sent: dict[str, int]

    def do_GET(self) -> None:
        wanted = self.headers.get("Range", "")
        path = Path(self.translate_path(self.path))
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted)
        if not match or not path.is_file():
            if path.suffix == ".whl":
                self.sent[path.name] = self.sent.get(path.name, 0) + path.stat().st_size
            super().do_GET()
            return
        data = path.read_bytes()
        first, last = match.groups()
        start = len(data) - int(last) if not first else int(first)
        end = len(data) - 1 if not first or not last else min(int(last), len(data) - 1)
        body = data[max(start, 0) : end + 1]
        self.sent[path.name] = self.sent.get(path.name, 0) + len(body)
        self.send_response(206)
        # lower case, as PyPI's file host writes it (a case-sensitive lookup missed it)
        self.send_header("content-range", f"bytes {max(start, 0)}-{end}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_over_http_the_check_reads_a_few_bytes_of_the_companion_not_the_wheel(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """Over HTTP (range requests) the mismatch is seen (and warned of: CUDA 13.2 beside 13.0)
    having read part of torchaudio's wheel, and none of torch's."""
    wheels = _pypi_wheels(("2.11.1+cu132",))
    # a wheel as big as a real torchaudio's tail makes "part of it" mean something
    padded = Wheel(
        "torchaudio",
        "2.11.1",
        ("torch>=2.11",),
        tag=f"py3-none-{LINUX}",
        files={
            **_version_py("torchaudio", "2.11.1+cu132"),
            "torchaudio/lib/libtorchaudio.so": os.urandom(400_000),
        },
    )
    wheels = [w for w in wheels if w.name != "torchaudio"] + [padded]
    build_index(tmp_path / "pypi", wheels)
    sent: dict[str, int] = {}
    with serve(tmp_path / "pypi", RangeHandler, sent=sent) as (url, _):
        code, stdout, stderr = _lock(isolated_dirs, tmp_path / "out", f"{url}/simple")
    assert code == 0, (stdout, stderr)
    (warned,) = _warnings(stderr)
    assert "torchaudio 2.11.1 is a CUDA 13.2 build" in warned
    wheel = next((tmp_path / "pypi" / "files").glob("torchaudio-2.11.1-*.whl"))
    got = sent.get(wheel.name, 0)
    assert 0 < got < wheel.stat().st_size // 2, (got, wheel.stat().st_size)
    assert not any(name.startswith("torch-") for name in sent), sent


def test_behind_basic_auth_the_wheel_is_read_with_the_indexs_credentials_never_shown(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """An index that answers only with basic auth (and ignores Range: the whole wheel is read):
    the companions are read with the index's user-info, the pair is checked, and the password
    is in no output and not in the lock."""
    from tests.support.http_server import PASSWORD, USER, basic_auth_server

    build_index(tmp_path / "pypi", _pypi_wheels(("2.11.0+cu130",)))
    out = tmp_path / "out"
    with basic_auth_server(tmp_path / "pypi") as (url, seen):
        index = url.replace("http://", f"http://{USER}:{PASSWORD}@") + "/simple"
        code, stdout, stderr = _lock(isolated_dirs, out, index)
    assert code == 0, stderr
    text = (out / "pylock.pytorch-cu130.toml").read_text()
    assert "#   CUDA checked: torchaudio 2.11.0 is a CUDA 13.0 build, as torch is" in text
    assert None not in seen[-2:]  # the wheels read last were asked for with credentials
    for shown in (stdout, stderr, text):
        assert PASSWORD not in shown


def _zip_with(path: Path, member: str, text: str) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, text)
    return path


@pytest.mark.parametrize("other_host", [True, False], ids=["to-another-host", "same-host"])
def test_a_redirect_to_another_host_does_not_carry_the_indexs_password(
    tmp_path: Path, other_host: bool
) -> None:
    """A private index that sends its files on to a CDN (a 302 to another host) answers with the
    wheel, read without the index's credentials there: urllib copies every header to wherever a
    redirect points, Authorization included. A redirect within the index's host keeps them."""
    from dlsetup.envs.venv.wheel_peek import read_member
    from tests.support.http_server import AUTHORIZATION, redirecting_index

    (tmp_path / "cdn").mkdir()
    wheel = "torchaudio-2.11.1-py3-none-any.whl"
    _zip_with(tmp_path / "cdn" / wheel, "torchaudio/version.py", "__version__ = '2.11.1+cu132'\n")
    with redirecting_index(tmp_path, other_host=other_host) as served:
        text = read_member(
            f"{served.bare}/{wheel}", "torchaudio/version.py", indexes=[f"{served.url}/simple"]
        )
    assert "2.11.1+cu132" in text
    seen = served.index_seen
    assert seen and {auth for _, auth in seen} == {AUTHORIZATION}, seen
    if other_host:  # the CDN served it, never given the password
        assert served.cdn_seen and {a for _, a in served.cdn_seen} == {None}, served.cdn_seen
    else:  # the index served it at its own /cdn, with the credentials
        assert not served.cdn_seen
        assert any(path.startswith("/cdn/") for path, _ in seen), seen
