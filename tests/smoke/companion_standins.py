"""Stand-in ``torchvision`` and ``torchaudio`` packages beside the real torch.

Each builder writes a small package into ``root`` and returns ``root``: put it on ``PYTHONPATH`` and
the smoke worker and doctor's probe import it instead of the real companion. The working stand-ins
compute with real torch ops (``torchvision::nms`` is registered through ``torch.library``, so
``torch.ops.torchvision.nms`` exists as with the real extension; the spectrogram is ``torch.stft``);
the broken ones fail the way real broken installs do:

* ``op_missing``: the package imports, but its extension did not load: ``_has_ops()`` is False and
  the operator raises torch's own ``RuntimeError: operator torchvision::nms does not exist`` (from
  ``torch.library.register_fake``, the call the real torchvision makes);
* ``import_fails``: the import raises that same error (the real 0.28.0 CUDA wheel beside a CPU torch
  does this, in ``_meta_registrations``); torchaudio's import raises the loader's ``OSError``;
* ``wrong``: it runs, with wrong numbers (nms keeps every box; the spectrogram is a magnitude, not a
  power).

A ``_C.so`` (torchvision) or ``lib/libtorchaudio.so`` that is not a shared library sits in the broken
packages, so that loading the extension fails with a real loader error ("invalid ELF header").
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

MODES = ("working", "op_missing", "import_fails", "wrong", "extension", "extension_wrong")

#: A real shared library whose loading registers the stand-in's operators, as torchvision's
#: ``_C.so`` does: its constructor runs ``_C_register.py`` beside it through the interpreter that
#: loads it (``torch.ops.load_library`` -> ``ctypes.CDLL``), so the fast path of the checks (load
#: only the extension, call ``torch.ops.torchvision.nms``) is exercised with no torchvision.
_EXTENSION_C = r"""
extern int PyGILState_Ensure(void);
extern void PyGILState_Release(int);
extern int PyRun_SimpleStringFlags(const char *, void *);
__attribute__((constructor)) static void register_ops(void) {
    int state = PyGILState_Ensure();
    PyRun_SimpleStringFlags(
        "exec(compile(open(" REGISTER ").read(), " REGISTER ", 'exec'), {})", 0);
    PyGILState_Release(state);
}
"""

_NMS = """
def _nms_impl(dets, scores, iou_threshold):
    order = torch.argsort(scores, descending=True)
    keep = []
    suppressed = torch.zeros(dets.shape[0], dtype=torch.bool)
    x1, y1, x2, y2 = (dets[:, i].to("cpu") for i in range(4))
    area = (x2 - x1) * (y2 - y1)
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
        inter = w * h
        suppressed |= inter / (area[i] + area - inter) > iou_threshold
    return torch.tensor(keep, dtype=torch.int64, device=dets.device)
"""


def _dist_info(name: str, version: str, requires_torch: str | None) -> dict[str, str]:
    """Distribution metadata, as pip writes it, with the ``torch`` requirement of the wheel."""
    if requires_torch is None:
        return {}
    base = version.partition("+")[0]
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {base}\nRequires-Dist: numpy\n"
    meta += f"Requires-Dist: torch ({requires_torch})\n"
    return {f"{name}-{base}.dist-info/METADATA": meta}


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text).lstrip(), encoding="utf-8")
    return root


def torchvision_standin(
    root: Path,
    mode: str = "working",
    version: str = "0.28.0+cpu",
    requires_torch: str | None = None,
) -> Path:
    """A ``torchvision`` with ``ops.nms``, ``extension._has_ops`` and ``version``; with
    ``requires_torch`` (``"==2.13.0"``) also its distribution metadata."""
    assert mode in MODES, mode
    files = {"torchvision/version.py": f"__version__ = {version!r}\ngit_version = 'standin'\n"}
    files.update(_dist_info("torchvision", version, requires_torch))
    if mode in ("extension", "extension_wrong"):
        return _extension_package(root, files, wrong=mode == "extension_wrong")
    if mode in ("working", "wrong"):
        files["torchvision/extension.py"] = (
            "import torch\n"
            "_lib = torch.library.Library('torchvision', 'DEF')\n"
            "_lib.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')\n"
            + dedent(_NMS)
            + "_lib.impl('nms', _nms_impl, 'CompositeExplicitAutograd')\n"
            "def _has_ops():\n    return True\n"
        )
        call = (
            "torch.ops.torchvision.nms(boxes, scores, iou_threshold)"
            if mode == "working"
            else "torch.arange(boxes.shape[0], device=boxes.device)"
        )
        files["torchvision/ops/__init__.py"] = (
            f"import torch\n\ndef nms(boxes, scores, iou_threshold):\n    return {call}\n"
        )
        files["torchvision/__init__.py"] = """
            import torch
            from . import extension, ops, version
            from .version import __version__
            """
        return _write(root, files)
    files["torchvision/_C.so"] = "not a shared library\n"
    files["torchvision/extension.py"] = "def _has_ops():\n    return False\n"
    files["torchvision/ops/__init__.py"] = """
        import torch

        def nms(boxes, scores, iou_threshold):
            # what the real package's registration does when its _C extension did not load
            torch.library.register_fake("torchvision::nms")(lambda *args: None)
            return torch.ops.torchvision.nms(boxes, scores, iou_threshold)
        """
    if mode == "op_missing":
        files["torchvision/__init__.py"] = """
            import torch
            from . import extension, ops, version
            from .version import __version__
            """
    else:
        files["torchvision/__init__.py"] = """
            import torch
            from . import extension
            torch.library.register_fake("torchvision::nms")(lambda *args: None)  # raises
            """
    return _write(root, files)


def _extension_package(root: Path, files: dict[str, str], *, wrong: bool) -> Path:
    """torchvision whose operators come from a compiled ``_C.so``, loaded like the real one."""
    import subprocess

    impl = "_nms_impl" if not wrong else "lambda d, s, t: torch.arange(d.shape[0])"
    files["torchvision/_C_register.py"] = (
        "import torch\n"
        "_lib = torch.library.Library('torchvision', 'DEF')\n"
        "_lib.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')\n"
        "_lib.define('_cuda_version() -> int')\n"
        + dedent(_NMS)
        + f"_lib.impl('nms', {impl}, 'CompositeExplicitAutograd')\n"
        "_lib.impl('_cuda_version', lambda: -1, 'CompositeExplicitAutograd')\n"
        "torch._standin_library = _lib  # kept alive: dropping it unregisters the operators\n"
    )
    files["torchvision/extension.py"] = """
        import os
        import torch
        torch.ops.load_library(os.path.join(os.path.dirname(__file__), "_C.so"))
        def _has_ops():
            return True
        """
    files["torchvision/ops/__init__.py"] = (
        "import torch\n\ndef nms(boxes, scores, iou_threshold):\n"
        "    return torch.ops.torchvision.nms(boxes, scores, iou_threshold)\n"
    )
    files["torchvision/__init__.py"] = """
        import torch
        from . import extension, ops, version
        from .version import __version__
        """
    _write(root, files)
    source = root / "torchvision" / "_C.c"
    source.write_text(_EXTENSION_C, encoding="utf-8")
    register = str(root / "torchvision" / "_C_register.py")
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", str(root / "torchvision" / "_C.so"), str(source),
         f"-DREGISTER=\"{register!r}\""],
        check=True, capture_output=True,
    )  # fmt: skip
    return root


def torchaudio_standin(
    root: Path,
    mode: str = "working",
    version: str = "2.13.0+cpu",
    requires_torch: str | None = None,
) -> Path:
    """A ``torchaudio`` with ``transforms.Spectrogram`` (``torch.stft``) and ``_extension``."""
    assert mode in ("working", "import_fails", "wrong"), mode
    files = {"torchaudio/version.py": f"__version__ = {version!r}\ngit_version = 'standin'\n"}
    files.update(_dist_info("torchaudio", version, requires_torch))
    if mode == "import_fails":
        files["torchaudio/lib/libtorchaudio.so"] = "not a shared library\n"
        files["torchaudio/__init__.py"] = """
            import os
            import torch
            # the real _extension._load_lib: the loader's error is not caught
            torch.ops.load_library(os.path.join(os.path.dirname(__file__), "lib", "libtorchaudio.so"))
            """
        return _write(root, files)
    power = "2.0" if mode == "working" else "1.0"
    files["torchaudio/_extension.py"] = "_IS_TORCHAUDIO_EXT_AVAILABLE = True\n"
    files["torchaudio/transforms.py"] = f"""
        import torch


        class Spectrogram(torch.nn.Module):
            def __init__(self, n_fft=400, win_length=None, hop_length=None, power=2.0):
                super().__init__()
                self.n_fft = n_fft
                self.win_length = win_length or n_fft
                self.hop_length = hop_length or self.win_length // 2
                self.power = {power}
                self.register_buffer("window", torch.hann_window(self.win_length))

            def forward(self, waveform):
                spec = torch.stft(
                    waveform, self.n_fft, self.hop_length, self.win_length, self.window,
                    center=True, pad_mode="reflect", normalized=False, onesided=True,
                    return_complex=True,
                )
                return spec.abs().pow(self.power)
        """
    files["torchaudio/__init__.py"] = """
        import torch
        from . import _extension, transforms, version
        from .version import __version__
        """
    return _write(root, files)


def real_torchvision(target: Path, version: str = "0.28.0") -> Path:
    """The real torchvision ``version`` from PyPI, installed without dependencies into ``target``
    (put it on ``PYTHONPATH`` beside the venv's torch); skips the test when it cannot be had."""
    import subprocess
    import sys

    import pytest

    wheels = target.parent / f"{target.name}-wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    steps = (
        [*pip, "download", f"torchvision=={version}", "--no-deps", "-d", str(wheels)],
        [*pip, "install", "--no-deps", "--no-index", "--find-links", str(wheels),
         "--target", str(target), f"torchvision=={version}"],
    )  # fmt: skip
    for argv in steps:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            pytest.skip(f"{' '.join(argv[3:5])} took more than 300 s (no network?)")
        if proc.returncode != 0:
            pytest.skip(f"torchvision=={version} could not be had: {proc.stderr.strip()[-300:]}")
    return target
