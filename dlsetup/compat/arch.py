"""GPU compute capability against a framework build's architecture list.

Rule (source in ``data/compat.yaml``, ``arch_rule``): SASS built for ``sm_XY`` runs only on GPUs of
the same major X with minor >= Y (``sm_80`` runs on 8.6 and 8.9, not on 9.0); PTX (``compute_XY``)
is JIT-compiled by the driver for any GPU of capability >= X.Y.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

CC = tuple[int, int]

_TOKEN = re.compile(r"^(sm|compute)_(\d+?)(\d)([a-z]?)$")
_DOTTED = re.compile(r"^(\d+)\.(\d+)(\+PTX)?$", re.IGNORECASE)


@dataclass(frozen=True)
class ArchList:
    """What a build ships: SASS for some capabilities, PTX for others."""

    sass: frozenset[CC]
    ptx: frozenset[CC]

    def __bool__(self) -> bool:
        return bool(self.sass or self.ptx)


def parse_arch_list(items: Iterable[str] | str) -> ArchList:
    """Parse a build's architecture list in any of the forms frameworks print.

    Accepts ``torch.cuda.get_arch_list()`` (``["sm_80", "sm_90", "compute_90"]``), TF's
    ``cuda_compute_capabilities`` (same tokens), and ``TORCH_CUDA_ARCH_LIST`` strings
    (``"7.5;8.0;12.0+PTX"``). Architecture-specific suffixes (``sm_90a``) count as their base.
    Unrecognised tokens are ignored.
    """
    if isinstance(items, str):
        items = re.split(r"[;,\s]+", items)
    sass: set[CC] = set()
    ptx: set[CC] = set()
    for raw in items:
        token = raw.strip()
        if not token:
            continue
        m = _TOKEN.match(token)
        if m:
            cc = (int(m.group(2)), int(m.group(3)))
            (sass if m.group(1) == "sm" else ptx).add(cc)
            continue
        d = _DOTTED.match(token)
        if d:
            cc = (int(d.group(1)), int(d.group(2)))
            sass.add(cc)
            if d.group(3):
                ptx.add(cc)
    return ArchList(frozenset(sass), frozenset(ptx))


@dataclass(frozen=True)
class ArchVerdict:
    """Whether a GPU can run a build's kernels.

    Attributes:
        runs: True when SASS fits or PTX can be JIT-compiled.
        how: ``sass`` | ``ptx_jit`` | ``none``.
        reason: one sentence.
    """

    runs: bool
    how: str
    reason: str


def fmt_cc(cc: CC) -> str:
    """``(12, 0) -> "12.0"``."""
    return f"{cc[0]}.{cc[1]}"


def gpu_runs_build(cc: CC, arch: ArchList) -> ArchVerdict:
    """Decide whether a GPU of compute capability ``cc`` runs code from a build with ``arch``.

    Args:
        cc: the GPU's compute capability, ``(major, minor)``.
        arch: the build's :class:`ArchList`.
    """
    sass_fit = sorted(s for s in arch.sass if s[0] == cc[0] and s[1] <= cc[1])
    if sass_fit:
        return ArchVerdict(
            True, "sass", f"the build has sm_{sass_fit[-1][0]}{sass_fit[-1][1]} code"
        )
    ptx_fit = sorted(p for p in arch.ptx if p <= cc)
    if ptx_fit:
        p = ptx_fit[-1]
        return ArchVerdict(
            True,
            "ptx_jit",
            f"no matching SASS; the driver JIT-compiles the build's compute_{p[0]}{p[1]} PTX "
            "(slow first start)",
        )
    newest = max(arch.sass | arch.ptx, default=None)
    shipped = "nothing" if newest is None else f"up to sm_{newest[0]}{newest[1]}"
    return ArchVerdict(
        False,
        "none",
        f"the build ships kernels {shipped} and no PTX the driver could compile for "
        f"compute capability {fmt_cc(cc)}",
    )
