"""``--plot``: the grid of loss curves, PyTorch and TensorFlow overlaid (matplotlib, optional)."""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

from dlsetup.errors import MissingToolError
from dlsetup.smoke.reference import ACTIVATIONS, LOSSES
from dlsetup.smoke.results import SmokeReport


def plot_curves(report: SmokeReport, path: Path) -> None:
    """Write a 6 x 8 grid (activations x losses) of training-loss curves to ``path`` (PNG).

    The file is written whole or not at all (a temporary file beside it, then a rename).

    Every framework and device that ran is drawn in each cell, so the two frameworks overlay.

    Raises:
        MissingToolError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingToolError(
            "--plot needs matplotlib, which is not installed",
            fix="pip install 'dlsetup[plot]'",
        ) from exc
    fig, axes = plt.subplots(len(ACTIVATIONS), len(LOSSES), figsize=(24, 15), squeeze=False)
    for run in report.runs:
        if not run.curves:
            continue
        label = f"{run.framework} {run.device}"
        style = "-" if run.framework == "torch" else "--"
        for i, curve in enumerate(run.curves):
            ax = axes[i // len(LOSSES)][i % len(LOSSES)]
            steps = [s for s, v in enumerate(curve) if v is not None]
            ax.plot(steps, [v for v in curve if v is not None], style, label=label, linewidth=1)
    for a, act in enumerate(ACTIVATIONS):
        for lo, loss in enumerate(LOSSES):
            ax = axes[a][lo]
            ax.set_title(f"{act} / {loss}", fontsize=8)
            ax.tick_params(labelsize=6)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right")
    fig.suptitle(f"dlsetup smoke: training loss per step (seed {report.seed})")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=80)
    plt.close(fig)
    _write_bytes_atomically(path, png.getvalue())


def _write_bytes_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it and a rename (whole or not
    at all, like :func:`dlsetup.atomic_write.write_text_atomically` for text)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
