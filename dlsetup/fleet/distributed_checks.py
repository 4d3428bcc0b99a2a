"""The checks of the distributed smoke, one function per phase (run on every rank).

Each phase takes the rank's ``Run`` (:mod:`distributed_worker`), torch, ``torch.distributed`` and
the rank's device; it records rows and results on the run, and adds verdicts with ``run.check``.
Imports only the standard library, NumPy and torch (and the smoke worker's modules, by path).
Loaded by :mod:`distributed_worker` as a sibling module.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

#: Prefix of every key dlsetup puts in the rendezvous store.
PREFIX = "dlsetup/"


class PhaseFailed(Exception):
    """A phase failed on this rank; the run stops (the diagnosis is in ``Run.failure``)."""


def _ranges(ranks: list[int]) -> str:
    return ", ".join(str(r) for r in sorted(ranks))


# -- the phases -------------------------------------------------------------------------------


def _sync(torch: Any, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def phase_allreduce(run: Any, torch: Any, dist: Any, device: str) -> None:
    """SUM of (rank+1)*1000 + i over ranks, and MAX of rank+1: exact, checked on every rank."""
    n, w = 8, run.world
    values = torch.tensor(
        [(run.rank + 1) * 1000.0 + i for i in range(n)], dtype=torch.float64, device=device
    )
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    biggest = torch.tensor([run.rank + 1], dtype=torch.int64, device=device)
    dist.all_reduce(biggest, op=dist.ReduceOp.MAX)
    expected = [1000.0 * w * (w + 1) / 2 + w * i for i in range(n)]
    got = [*values.cpu().tolist(), float(biggest.item())]
    want = [*expected, float(w)]
    gathered = [torch.zeros(n + 1, dtype=torch.float64, device=device) for _ in range(w)]
    dist.all_gather(gathered, torch.tensor(got, dtype=torch.float64, device=device))
    results = [g.cpu().tolist() for g in gathered]
    wrong = [r for r, res in enumerate(results) if res != want]
    run.row["allreduce_ok"] = got == want
    run.results["allreduce"] = {
        "formula": "SUM over ranks r of (r+1)*1000 + i, i = 0..7; then MAX of r+1",
        "expected": want,
        "wrong_ranks": [{"rank": r, "got": results[r]} for r in wrong],
    }
    run.check(
        "all-reduce exact",
        not wrong,
        "every rank got the exact sum and max"
        if not wrong
        else f"rank(s) {_ranges(wrong)} got a wrong all-reduce result",
    )
    if wrong:  # what follows trusts the collectives: stop here, naming the ranks
        run.failure = {
            "phase": "all_reduce",
            "error": f"rank(s) {_ranges(wrong)} returned a wrong all-reduce result",
            "ranks": [
                {"rank": r, "state": "wrong", "detail": f"got {results[r]}, expected {want}"}
                for r in wrong
            ],
        }
        raise PhaseFailed(run.failure["error"])


def _versions(torch: Any, device: str) -> dict[str, str]:
    import platform

    import numpy as np

    cuda = torch.version.cuda or "none (CPU build)"
    nccl = "n/a"
    if torch.cuda.is_available():
        try:
            nccl = ".".join(str(p) for p in torch.cuda.nccl.version())
        except Exception as exc:
            nccl = f"n/a ({type(exc).__name__})"
    gpu = torch.cuda.get_device_name(device) if device.startswith("cuda") else "none"
    return {
        "torch": str(torch.__version__),
        "cuda": str(cuda),
        "nccl": nccl,
        "python": platform.python_version(),
        "numpy": str(np.__version__),
        "gpu": gpu,
        "gpu_count": str(torch.cuda.device_count() if torch.cuda.is_available() else 0),
    }


def phase_versions(run: Any, torch: Any, dist: Any, device: str) -> None:
    mine = _versions(torch, device)
    run.row["versions"] = mine
    everyone: list[Any] = [None] * run.world
    dist.all_gather_object(everyone, mine)
    drift: list[dict[str, Any]] = []
    for key in mine:
        values = [str(v.get(key)) for v in everyone]
        majority = Counter(values).most_common(1)[0][0]
        differing = [{"rank": r, "value": v} for r, v in enumerate(values) if v != majority]
        if differing:
            drift.append({"key": key, "majority": majority, "differing": differing})
    run.results["versions"] = {"per_rank": everyone, "drift": drift}
    detail = "; ".join(
        f"{d['key']}: "
        + ", ".join(f"rank {x['rank']}={x['value']}" for x in d["differing"])
        + f" (others {d['majority']})"
        for d in drift
    )
    run.check("versions identical", not drift, detail or "every rank has the same versions")


def phase_bandwidth(run: Any, torch: Any, dist: Any, device: str) -> None:
    """nccl-tests' all_reduce_perf definitions: algbw = bytes / t, busbw = algbw * 2(n-1)/n,
    t the slowest rank's mean time per all-reduce."""
    n = run.world
    rows = []
    for size in run.args.sizes:
        count = max(size // 4, 1)
        buf = torch.ones(count, dtype=torch.float32, device=device)
        for _ in range(run.args.warmup):
            dist.all_reduce(buf)
        _sync(torch, device)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(run.args.iters):
            dist.all_reduce(buf)
        _sync(torch, device)
        mine = (time.perf_counter() - t0) / run.args.iters
        times = [torch.zeros(1, dtype=torch.float64, device=device) for _ in range(n)]
        dist.all_gather(times, torch.tensor([mine], dtype=torch.float64, device=device))
        per_rank = [float(t.item()) for t in times]
        slowest = max(range(n), key=per_rank.__getitem__)
        t_max = per_rank[slowest]
        nbytes = count * 4
        algbw = nbytes / t_max / 1e9
        rows.append({
            "bytes": nbytes, "count": count, "dtype": "float32", "iters": run.args.iters,
            "time_s_per_rank": per_rank, "time_s": t_max, "slowest_rank": slowest,
            "algbw_GBps": algbw, "busbw_GBps": algbw * 2 * (n - 1) / n,
        })  # fmt: skip
    run.results["bandwidth"] = {
        "definition": "algbw = bytes / time; busbw = algbw * 2(n-1)/n (nccl-tests, all-reduce); "
        "time = the slowest rank's mean time per all-reduce",
        "sizes": rows,
    }


def phase_matmul(run: Any, torch: Any, dist: Any, device: str) -> None:
    size = run.args.matmul_n
    gen = torch.Generator(device="cpu").manual_seed(run.rank)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    torch.matmul(a, b)
    _sync(torch, device)
    times = []
    for _ in range(run.args.matmul_reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        _sync(torch, device)
        times.append(time.perf_counter() - t0)
    mine = statistics.median(times) * 1000.0
    run.row["matmul_ms"] = mine
    gathered = [torch.zeros(1, dtype=torch.float64, device=device) for _ in range(run.world)]
    dist.all_gather(gathered, torch.tensor([mine], dtype=torch.float64, device=device))
    per_rank = [float(g.item()) for g in gathered]
    median = statistics.median(per_rank)
    factor = run.args.straggler_factor
    stragglers = [r for r, t in enumerate(per_rank) if t > factor * median]
    run.results["matmul"] = {
        "n": size,
        "dtype": "float32",
        "ms_per_rank": per_rank,
        "median_ms": median,
        "straggler_factor": factor,
        "stragglers": stragglers,
        "gflops_per_rank": [2 * size**3 / (t / 1000.0) / 1e9 for t in per_rank],
    }


def phase_ddp(run: Any, torch: Any, dist: Any, device: str) -> None:
    """One DDP step: every rank's gradient identical, and equal to the mean of the local ones."""
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(run.args.seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(
        device
    )
    local = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(
        device
    )
    local.load_state_dict(model.state_dict())
    gen = torch.Generator(device="cpu").manual_seed(run.args.seed * 1000 + run.rank)
    x = torch.randn(32, 8, generator=gen).to(device)
    y = torch.randn(32, 1, generator=gen).to(device)
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    ddp = DistributedDataParallel(model, device_ids=ids)
    torch.nn.functional.mse_loss(ddp(x), y).backward()
    torch.nn.functional.mse_loss(local(x), y).backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double()
    own = torch.cat([p.grad.reshape(-1) for p in local.parameters()]).double()
    grads = [torch.zeros_like(grad) for _ in range(run.world)]
    owns = [torch.zeros_like(own) for _ in range(run.world)]
    dist.all_gather(grads, grad)
    dist.all_gather(owns, own)
    spread = max(float((g - grads[0]).abs().max()) for g in grads)
    mean = torch.stack(owns).mean(dim=0)
    vs_mean = float((grad - mean).abs().max())
    scale = float(mean.abs().max()) or 1.0
    tolerance = 1e-5 * scale
    # the ranks whose gradient is not the one most ranks hold (bit for bit)
    exact = [g.cpu().numpy().tobytes() for g in grads]
    agreed = Counter(exact).most_common(1)[0][0]
    differing = [r for r, g in enumerate(exact) if g != agreed]
    run.row["ddp_ok"] = run.rank not in differing and vs_mean <= tolerance
    run.results["ddp"] = {
        "parameters": int(grad.numel()),
        "max_abs_diff_between_ranks": spread,
        "differing_ranks": differing,
        "max_abs_diff_vs_mean_of_local_gradients": vs_mean,
        "tolerance": tolerance,
    }
    run.check(
        "DDP gradients identical",
        not differing,
        "every rank holds the same gradient after the step"
        if not differing
        else f"rank(s) {_ranges(differing)} hold a gradient different from the other ranks' "
        f"(max |diff| {spread:.3g})",
    )
    run.check(
        "DDP gradient = mean of local gradients",
        vs_mean <= tolerance,
        f"max |DDP - mean| {vs_mean:.3g} (tolerance {tolerance:.3g})",
    )


def _smoke_grid(device: str, seed: int, steps: int) -> dict[str, Any]:
    """The seed's 6 x 8 grid on ``device``: the smoke worker's own code, loaded by path."""
    smoke_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "smoke")
    if smoke_dir not in sys.path:
        sys.path.insert(0, smoke_dir)
    torch_worker = importlib.import_module("torch_worker")
    worker_device = importlib.import_module("worker_device")
    return dict(worker_device.run_device(torch_worker.load(), device, seed, steps))


def phase_grid(run: Any, torch: Any, dist: Any, device: str) -> None:
    t0 = time.perf_counter()
    result = _smoke_grid(device, run.args.seed, run.args.steps)
    combos = result.get("combinations", [])
    functions = result.get("function_checks", [])
    failed = [f"{c['activation']}/{c['loss']}" for c in combos if not c.get("passed")]
    failed += [str(f.get("name", "function check")) for f in functions if not f.get("passed")]
    mine = {
        "status": result.get("status"),
        "error": result.get("error"),
        "combinations_passed": sum(bool(c.get("passed")) for c in combos),
        "combinations": len(combos),
        "function_checks_passed": sum(bool(f.get("passed")) for f in functions),
        "function_checks": len(functions),
        "failed": failed[:10],
        "seconds": time.perf_counter() - t0,
    }
    mine["passed"] = mine["status"] == "ok" and not failed and len(combos) > 0
    run.row["grid"] = mine
    everyone: list[Any] = [None] * run.world
    dist.all_gather_object(everyone, mine)
    bad = [r for r, g in enumerate(everyone) if not g["passed"]]
    run.check(
        "seed grid (6 activations x 8 losses) on every rank",
        not bad,
        f"{mine['combinations']} combinations and {mine['function_checks']} function checks "
        "per rank against the NumPy reference"
        if not bad
        else "; ".join(
            f"rank {r}: {everyone[r]['status']} {everyone[r]['error'] or ''} "
            f"{', '.join(everyone[r]['failed'])}".strip()
            for r in bad
        ),
    )


def _children() -> Any:
    """dlsetup's one child runner (``dlsetup/children.py``, standard library only), loaded by
    path: a rank's interpreter has no dlsetup to import."""
    name = "dlsetup_children"
    if name not in sys.modules:
        path = os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "children.py"
        )
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before it runs: its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


def _run_tool(argv: list[str], timeout: float) -> dict[str, Any]:
    """Run a node's tool with the runner's guarantees: its own process group, ended with
    everything it started at the deadline, killed by the kernel if this rank dies."""
    try:
        done = _children().run(argv, timeout=timeout, output="capture")
    except OSError as exc:
        return {"status": "error", "exit_code": None, "output": str(exc)}
    if done.timed_out:
        return {"status": "timeout", "exit_code": None, "output": done.stdout + done.stderr}
    return {"status": "ran", "exit_code": done.returncode, "output": done.stdout + done.stderr}


def _nccl_tests_verdict(result: dict[str, Any]) -> tuple[str, str]:
    out = result["output"]
    bus = re.search(r"#\s*Avg bus bandwidth\s*:\s*([\d.]+)", out)
    wrong = re.search(r"#\s*Out of bounds values\s*:\s*(\d+)", out)
    if result["status"] != "ran" or result["exit_code"] != 0:
        return "fail", f"{result['status']}, exit {result['exit_code']}"
    if wrong and int(wrong.group(1)) > 0:
        return "fail", f"{wrong.group(1)} out-of-bounds values"
    return "pass", f"avg bus bandwidth {bus.group(1) if bus else '?'} GB/s"


def _dcgm_verdict(result: dict[str, Any]) -> tuple[str, str]:
    out = result["output"]
    fails = [line.strip() for line in out.splitlines() if re.search(r"\bFail\b", line)]
    if result["status"] != "ran":
        return "fail", result["status"]
    if fails or result["exit_code"] != 0:
        return "fail", "; ".join(fails[:3]) or f"exit {result['exit_code']}"
    return "pass", "no test failed"


def phase_tools(run: Any, torch: Any, dist: Any, device: str) -> None:
    """nccl-tests' all_reduce_perf and DCGM's diag on each node (local rank 0), when installed."""
    mine: list[dict[str, Any]] = []
    if run.local_rank == 0:
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        perf = shutil.which("all_reduce_perf")
        if perf:
            argv = [perf, "-b", "8M", "-e", "128M", "-f", "2", "-g", str(max(gpus, 1))]
            result = _run_tool(argv, run.args.tool_timeout)
            verdict, detail = _nccl_tests_verdict(result)
            mine.append({"tool": "all_reduce_perf", "node": run.host, "argv": argv,
                         "verdict": verdict, "detail": detail, "exit_code": result["exit_code"],
                         "output_tail": result["output"][-2000:]})  # fmt: skip
        dcgmi = shutil.which("dcgmi")
        if dcgmi:
            argv = [dcgmi, "diag", "-r", "1"]
            result = _run_tool(argv, run.args.tool_timeout)
            verdict, detail = _dcgm_verdict(result)
            mine.append({"tool": "dcgmi diag", "node": run.host, "argv": argv,
                         "verdict": verdict, "detail": detail, "exit_code": result["exit_code"],
                         "output_tail": result["output"][-2000:]})  # fmt: skip
    # the other ranks wait here while the node's tools run: a long wait is expected, not a hang
    store = run.store
    store.set(f"{PREFIX}tools/{run.rank}", json.dumps(mine))
    deadline = time.monotonic() + run.args.tool_timeout * 2 + run.timeout
    keys = [f"{PREFIX}tools/{r}" for r in range(run.world)]
    while not all(store.check([k]) for k in keys):
        if time.monotonic() > deadline:
            raise TimeoutError("the external tools of some node did not finish")
        time.sleep(0.1)
    tools = [t for k in keys for t in json.loads(bytes(store.get(k)).decode())]
    run.results["tools"] = tools
    for t in tools:
        run.check(f"{t['tool']} on {t['node']}", t["verdict"] == "pass", t["detail"])


PHASES: tuple[tuple[str, Callable[[Any, Any, Any, str], None]], ...] = (
    ("all_reduce", phase_allreduce),
    ("versions", phase_versions),
    ("bandwidth", phase_bandwidth),
    ("matmul", phase_matmul),
    ("ddp", phase_ddp),
    ("grid", phase_grid),
    ("tools", phase_tools),
)
