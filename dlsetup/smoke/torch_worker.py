"""The PyTorch smoke worker: run as a script inside the target interpreter.

``python torch_worker.py [--devices cpu,cuda:0] [--seed N] [--steps N]`` imports only the standard
library, NumPy and torch (plus the sibling modules ``worker_protocol``, ``worker_grid``,
``reference`` and ``companions``; torchvision and torchaudio, when installed, are imported after the
grid). All 48
models are trained at once as stacked weights: one batched matmul program per step, activations
applied per slice of models, losses per group of models.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

# NumPy's BLAS on one thread, as the framework runs: the calibration kernel the gate divides by
# (timing_kernel) then slows with the machine as the one-thread step and kernels do (on two
# threads its ratio to them moved with the load: +10% to +30% at load 7 against a baseline
# recorded at load 12); the reference's matrices are small.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

try:
    import numpy as np
except ImportError as _no_numpy:  # the environment lacks NumPy: say so in the protocol, exit 3
    import json

    _reason = f"{type(_no_numpy).__name__}: {_no_numpy}"
    sys.stdout.write("DLSETUP-SMOKE " + json.dumps({"event": "no_numpy", "reason": _reason}) + "\n")
    sys.stdout.flush()
    raise SystemExit(3) from None

if TYPE_CHECKING:
    from dlsetup.smoke import companions as comp
    from dlsetup.smoke import reference as ref
    from dlsetup.smoke import worker_grid as grid
    from dlsetup.smoke import worker_protocol as protocol
    from dlsetup.smoke.worker_clock import ChunkClock, timing_clock
else:  # run as a script: load the sibling modules by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import companions as comp
    import reference as ref
    import worker_grid as grid
    import worker_protocol as protocol
    from worker_clock import ChunkClock, timing_clock


def load() -> TorchBackend:
    """Import torch and build the backend (ImportError when torch is not installed)."""
    import torch

    # The tensors are tiny: extra intra-op threads only contend with the TensorFlow worker that
    # runs beside this one.
    torch.set_num_threads(1)
    # Full float32 matmuls (no TF32 on CUDA): the every-step check holds them to float32's band.
    torch.set_float32_matmul_precision("highest")
    return TorchBackend(torch)


class TorchBackend:
    """PyTorch implementations of the seed's functions and the stacked trainer."""

    framework = "torch"

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self.version = str(torch.__version__)
        fn = torch.nn.functional
        k = ref.ZERO_ONE_SHARPNESS
        self.acts: dict[str, Callable[[Any, Any], Any]] = {
            "sigmoid": lambda z, a: torch.sigmoid(z),
            "tanh": lambda z, a: torch.tanh(z),
            "relu": lambda z, a: torch.relu(z),
            "leaky_relu": lambda z, a: fn.leaky_relu(z, ref.LEAKY_SLOPE),
            "prelu": lambda z, a: torch.where(z > 0, z, a * z),
            "elu": lambda z, a: fn.elu(z, alpha=ref.ELU_ALPHA),
        }
        self.losses: dict[str, Callable[[Any, Any], Any]] = {
            "zero_one": lambda f, y: torch.sigmoid(-k * y * f),
            "absolute": lambda f, y: torch.abs(y - f),
            "log": lambda f, y: -fn.logsigmoid(y * f),
            "square": lambda f, y: (y - f) ** 2,
            "exponential": lambda f, y: torch.exp(-y * f),
            "hinge": lambda f, y: torch.relu(1.0 - y * f),
            "perceptron": lambda f, y: torch.relu(-y * f),
            "cross_entropy": lambda f, y: fn.binary_cross_entropy_with_logits(
                f, ((1.0 + y) / 2.0).expand_as(f), reduction="none"
            ),
        }
        grid.require_complete(self.framework, self.acts, self.losses)

    def devices(self) -> list[str]:
        torch = self.torch
        out = ["cpu"]
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            out.append("mps")
        return out

    def dtypes(self, device: str) -> list[str]:
        return ["float32"] if device.startswith("mps") else ["float32", "float64"]

    def _tensor(self, values: Any, device: str, dtype: str, grad: bool = False) -> Any:
        torch = self.torch
        return torch.tensor(
            np.asarray(values), dtype=getattr(torch, dtype), device=device, requires_grad=grad
        )

    def _np(self, t: Any) -> grid.Array:
        return np.asarray(t.detach().to("cpu").double().numpy(), dtype=np.float64)

    def activation_value_grad(
        self, device: str, dtype: str, name: str, x: grid.Array, alpha: float
    ) -> tuple[grid.Array, grid.Array, grid.Array]:
        xt = self._tensor(x, device, dtype, grad=True)
        at = self._tensor(np.full(x.shape, alpha), device, dtype, grad=True)
        value = self.acts[name](xt, at)
        dx, da = self.torch.autograd.grad(value.sum(), [xt, at], allow_unused=True)
        zeros = np.zeros_like(x)
        return (
            self._np(value),
            zeros if dx is None else self._np(dx),
            zeros if da is None else self._np(da),
        )

    def loss_value_grad(
        self, device: str, dtype: str, name: str, f: grid.Array, y: grid.Array
    ) -> tuple[grid.Array, grid.Array]:
        ft = self._tensor(f, device, dtype, grad=True)
        value = self.losses[name](ft, self._tensor(y, device, dtype))
        (df,) = self.torch.autograd.grad(value.sum(), [ft])
        return self._np(value), self._np(df)

    def zero_one(self, device: str, dtype: str, f: grid.Array, y: grid.Array) -> grid.Array:
        ft = self._tensor(f, device, dtype)
        pred = self.torch.where(ft > 0, 1.0, -1.0).to(ft.dtype)
        return self._np((pred != self._tensor(y, device, dtype)).to(ft.dtype))

    def kernel_ops(self, device: str) -> TorchKernels:
        return TorchKernels(self.torch, device)

    def trainer(self, device: str, plan: grid.Plan) -> TorchTrainer:
        return TorchTrainer(self, device, plan)

    #: PyTorch's companions checked after each device (torchvision, torchaudio).
    companions: tuple[str, ...] = comp.COMPANIONS

    def companion_check(self, name: str, device: str) -> dict[str, Any]:
        """One companion's check on ``device`` (imports it lazily; see :mod:`companions`)."""
        return comp.check_companion(self.torch, name, device)

    def peak_device_memory(self, device: str) -> int | None:
        if device.startswith("cuda"):
            return int(self.torch.cuda.max_memory_allocated(device))
        if device.startswith("mps"):
            return int(self.torch.mps.driver_allocated_memory())
        return None


class TorchKernels:
    """The kernel tier's operations in PyTorch on one device (:class:`worker_kernels.KernelOps`).

    matmul is ``torch.mm`` (the 2-D GEMM; the grid's batched ``torch.matmul`` is left alone).
    """

    def __init__(self, torch: Any, device: str) -> None:
        self.torch = torch
        self.device = device

    def matmul_dtypes(self) -> list[str]:
        torch = self.torch
        if self.device.startswith("cuda"):
            low = ["float16"] + (["bfloat16"] if torch.cuda.is_bf16_supported() else [])
            return ["float32", "tf32", *low]
        if self.device.startswith("mps"):
            return ["float32", "float16"]
        return ["float32", "float64"]

    def thread_counts(self) -> list[int]:
        every = os.cpu_count() or 1
        return [1, every] if self.device == "cpu" and every > 1 else [1]

    def set_threads(self, n: int) -> None:
        if self.device == "cpu":
            self.torch.set_num_threads(n)

    def _t(self, values: Any, dtype: str) -> Any:
        torch = self.torch
        kind = getattr(torch, "float32" if dtype == "tf32" else dtype)
        return torch.from_numpy(np.asarray(values)).to(device=self.device, dtype=kind)

    def _np(self, t: Any) -> grid.Array:
        t = t.to("cpu")
        if t.dtype in (self.torch.bfloat16, self.torch.float16):
            t = t.float()
        return np.asarray(t.numpy(), dtype=np.float64)

    def matmul(self, a: Any, b: Any, dtype: str) -> grid.Array:
        torch = self.torch
        if dtype != "tf32":
            return self._np(torch.mm(self._t(a, dtype), self._t(b, dtype)))
        torch.set_float32_matmul_precision("high")  # TF32 where the GPU has it
        try:
            return self._np(torch.mm(self._t(a, dtype), self._t(b, dtype)))
        finally:
            torch.set_float32_matmul_precision("highest")

    def conv2d(self, x: Any, w: Any, dtype: str) -> grid.Array:
        fn = self.torch.nn.functional
        return self._np(fn.conv2d(self._t(x, dtype), self._t(w, dtype)))

    def reduce(self, name: str, x: Any, dtype: str) -> grid.Array:
        torch, t = self.torch, self._t(x, dtype)
        ops = {"sum": torch.sum, "mean": torch.mean}
        if name in ops:
            return self._np(ops[name](t))
        return self._np(getattr(torch, name)(t, 0))  # softmax, logsumexp

    def unary(self, name: str, x: Any, dtype: str) -> grid.Array:
        return self._np(getattr(self.torch, name)(self._t(x, dtype)))

    def prepare(self, kernel: str, *inputs: Any) -> Callable[[], Any]:
        torch = self.torch
        args = [self._t(v, "float32") for v in inputs]
        name = {"matmul": "mm"}.get(kernel, kernel)  # looked up at each call, as the grid does
        cuda = self.device.startswith("cuda")

        def call() -> Any:
            out = getattr(torch, name)(*args)
            if cuda:
                torch.cuda.synchronize()
            return out

        return call


class TorchTrainer:
    """All models of a plan as stacked tensors, trained by eager batched ops."""

    def __init__(self, backend: TorchBackend, device: str, plan: grid.Plan) -> None:
        torch = backend.torch
        self.b = backend
        self.device = device
        self.plan = plan
        self.loss_idx = [
            (name, torch.tensor(idx, dtype=torch.long, device=device))
            for name, idx in plan.loss_groups
        ]
        self.inverse = torch.tensor(plan.inverse, dtype=torch.long, device=device)

    def _forward(self, p: dict[str, Any], x: Any, y: Any) -> tuple[Any, Any]:
        torch = self.b.torch
        z = torch.matmul(x, p["w1"]) + p["b1"][:, None, :]  # (M, N, H)
        alpha = p["alpha"][:, None, None]
        h = torch.cat(
            [self.b.acts[a](z[s:e], alpha[s:e]) for a, s, e in self.plan.act_groups], dim=0
        )
        f = torch.matmul(h, p["w2"][:, :, None])[:, :, 0] + p["b2"][:, None]  # (M, N)
        per_group = [
            self.b.losses[n](f.index_select(0, idx), y).mean(dim=1) for n, idx in self.loss_idx
        ]
        losses = torch.cat(per_group).index_select(0, self.inverse)
        return losses, f

    def run(
        self,
        init: dict[str, grid.Array],
        x: grid.Array,
        y: grid.Array,
        *,
        lr: grid.Array,
        steps: int,
    ) -> grid.TrainOutput:
        torch = self.b.torch
        dev, dt = self.device, "float32"
        p = {k: self.b._tensor(v, dev, dt, grad=True) for k, v in init.items()}
        xt, yt = self.b._tensor(x, dev, dt), self.b._tensor(y, dev, dt)
        lr_t = self.b._tensor(lr, dev, dt)
        lr_b = {k: lr_t.reshape((-1,) + (1,) * (v.dim() - 1)) for k, v in p.items()}
        names = list(p)
        device_sync = torch.cuda.synchronize if dev.startswith("cuda") else None
        curves: list[Any] = []
        after_first: dict[str, grid.Array] = {}
        t0 = time.perf_counter()
        warmup = 0.0
        clock = ChunkClock(device_sync, timing_clock(dev))
        keep = set(grid.checkpoint_steps(steps))
        kept: list[list[Any]] = []
        for step in range(steps):
            losses, _ = self._forward(p, xt, yt)
            grads = torch.autograd.grad(losses.sum(), [p[k] for k in names], allow_unused=True)
            with torch.no_grad():
                for k, g in zip(names, grads, strict=True):
                    if g is not None:  # alpha is unused when no model is PReLU
                        p[k].sub_(lr_b[k] * g)
            curves.append(losses.detach())
            if step + 1 in keep:  # copies on the device; read back once after the loop
                kept.append([p[k].detach().clone() for k in names])
            if step == 0:
                after_first = {k: self.b._np(v) for k, v in p.items()}
                warmup = time.perf_counter() - t0
                t0 = time.perf_counter()
                clock.begin()
            else:
                clock.steps_done(1)
        with torch.no_grad():
            losses, f = self._forward(p, xt, yt)
        curves.append(losses)
        curve_np = self.b._np(torch.stack(curves))
        loop = time.perf_counter() - t0 - clock.kernel_s
        params = {k: self.b._np(torch.stack([c[j] for c in kept])) for j, k in enumerate(names)}
        return grid.TrainOutput(curve_np, after_first, self.b._np(f), warmup, loop, clock, params)


if __name__ == "__main__":
    protocol.exit_now(protocol.main("torch", load))
