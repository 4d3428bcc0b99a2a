"""Time to the fallback decision when PyTorch's index is out of reach (issue 22: under 5 s; before,
uv's retries took 8.5 s to fail on it, and 31 s on a DNS failure).

Run: .venv/bin/python -m benchmarks.bench_fallback

Two unreachable stand-ins for PyTorch's index on 127.0.0.1 (no network needed):

* a closed port (refused at once: what a firewall that rejects looks like);
* a black hole (a socket that listens and never answers: what a firewall that drops looks like).

Side by side, for each:

* before: ``uv pip compile torch --index <the unreachable index> --default-index <a local PyPI>``,
  what ``dlsetup lock --backend venv`` ran with no probe: the time until uv gives up (its own
  retries; the black hole is cut at ``CAP_S``, uv's read timeout being 30 s per try);
* after: :func:`dlsetup.envs.reachability.plan_venv_sources` with the same index and a mirror
  configured in pip's configuration: the time until the decision (fallback to the mirror) is made.

The median of ``RUNS`` runs each; the ratio before/after is printed. The machine's load average
is printed too (this machine is shared).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

RUNS = 3
CAP_S = 60.0
TARGET_S = 5.0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pypi(root: Path) -> str:
    """A one-project PEP 503 index (an empty ``torch`` page): enough for uv to start."""
    page = root / "pypi" / "simple" / "torch"
    page.mkdir(parents=True)
    (page / "index.html").write_text("<html><body></body></html>\n", encoding="utf-8")
    return (root / "pypi" / "simple").as_uri()


def _before(index: str, pypi: str, root: Path) -> float:
    from dlsetup.envs.pypi.uv import uv_binary

    reqs = root / "in.txt"
    reqs.write_text("torch\n", encoding="utf-8")
    env = {**os.environ, "UV_CACHE_DIR": str(root / "uv-cache"), "UV_NO_CONFIG": "1"}
    start = time.perf_counter()
    try:
        subprocess.run(
            [uv_binary(), "pip", "compile", str(reqs), "--index", index, "--default-index", pypi,
             "--python-version", "3.11", "--quiet", "--no-header", "-o", str(root / "out.txt")],
            env=env, capture_output=True, timeout=CAP_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return CAP_S
    return time.perf_counter() - start


def _after(index: str, pypi: str, root: Path) -> float:
    from dlsetup.envs.reachability import plan_venv_sources
    from dlsetup.envs.sources import Places

    home = root / "home"
    (home / ".config" / "pip").mkdir(parents=True, exist_ok=True)
    (home / ".config" / "pip" / "pip.conf").write_text(
        f"[global]\nindex-url = {pypi}\nextra-index-url = {pypi}\n", encoding="utf-8"
    )
    places = Places(env={}, home=home, root=root / "no-etc", prefix=None)
    start = time.perf_counter()
    chosen = plan_venv_sources(
        index_url=None, torch_indexes={"cpu": index}, torch_given=False, places=places
    )
    took = time.perf_counter() - start
    assert chosen.torch["cpu"].fallback, "the fallback was not taken"
    return took


def main() -> None:
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    cases = {
        "closed port": f"http://127.0.0.1:{_closed_port()}/whl/cpu",
        "black hole": f"http://127.0.0.1:{hole.getsockname()[1]}/whl/cpu",
    }
    try:
        for name, index in cases.items():
            before, after = [], []
            for _ in range(RUNS):
                with tempfile.TemporaryDirectory() as tmp:
                    root = Path(tmp)
                    pypi = _pypi(root)
                    before.append(_before(index, pypi, root))
                    after.append(_after(index, pypi, root))
            b, a = statistics.median(before), statistics.median(after)
            capped = " (cut at the cap)" if b >= CAP_S else ""
            verdict = "ok" if a < TARGET_S else f"OVER {TARGET_S} s"
            print(
                f"{name:12s} before (uv's retries): {b:6.2f} s{capped}   after (probe, "
                f"decision): {a:5.2f} s   ratio {b / a:6.1f}x   target < {TARGET_S} s: {verdict}"
            )
    finally:
        hole.close()


if __name__ == "__main__":
    main()
