"""The TensorFlow smoke worker: run as a script inside the target interpreter.

``python tf_worker.py [--devices CPU:0,GPU:0] [--seed N] [--steps N]`` imports only the standard
library, NumPy and TensorFlow (plus the sibling modules ``worker_protocol``, ``worker_grid`` and
``reference``). All 48
models are trained at once as stacked variables by one ``tf.function`` step, traced once per plan
and device. GPU memory growth is switched on before anything touches a GPU, so the smoke never
grabs a whole card.
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
    from dlsetup.smoke import reference as ref
    from dlsetup.smoke import worker_grid as grid
    from dlsetup.smoke import worker_protocol as protocol
    from dlsetup.smoke.worker_clock import TIMING_CHUNK, ChunkClock, timing_clock
else:  # run as a script: load the sibling modules by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import reference as ref
    import worker_grid as grid
    import worker_protocol as protocol
    from worker_clock import TIMING_CHUNK, ChunkClock, timing_clock


def load() -> TensorFlowBackend:
    """Import TensorFlow and build the backend (ImportError when it is not installed)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # The tensors are tiny: more threads only contend with the PyTorch worker beside this one
    # (and make the step time depend on what else the machine runs).
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    # Full float32 matmuls (TensorFlow uses TF32 on Ampere and later by default): the every-step
    # check holds them to float32's band.
    tf.config.experimental.enable_tensor_float_32_execution(False)
    return TensorFlowBackend(tf)


class TensorFlowBackend:
    """TensorFlow implementations of the seed's functions and the stacked trainer."""

    framework = "tensorflow"

    def __init__(self, tf: Any) -> None:
        self.tf = tf
        self.version = str(tf.__version__)
        k = ref.ZERO_ONE_SHARPNESS
        self.acts: dict[str, Callable[[Any, Any], Any]] = {
            "sigmoid": lambda z, a: tf.sigmoid(z),
            "tanh": lambda z, a: tf.tanh(z),
            "relu": lambda z, a: tf.nn.relu(z),
            "leaky_relu": lambda z, a: tf.nn.leaky_relu(z, alpha=ref.LEAKY_SLOPE),
            "prelu": lambda z, a: tf.where(z > 0, z, a * z),
            "elu": lambda z, a: tf.nn.elu(z),  # alpha = 1
        }
        self.losses: dict[str, Callable[[Any, Any], Any]] = {
            "zero_one": lambda f, y: tf.sigmoid(-k * y * f),
            "absolute": lambda f, y: tf.abs(y - f),
            "log": lambda f, y: -tf.math.log_sigmoid(y * f),
            "square": lambda f, y: tf.square(y - f),
            "exponential": lambda f, y: tf.exp(-y * f),
            "hinge": lambda f, y: tf.nn.relu(1.0 - y * f),
            "perceptron": lambda f, y: tf.nn.relu(-y * f),
            "cross_entropy": lambda f, y: tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.broadcast_to((1.0 + y) / 2.0, tf.shape(f)), logits=f
            ),
        }
        grid.require_complete(self.framework, self.acts, self.losses)

    def devices(self) -> list[str]:
        return [d.name.split("device:")[-1] for d in self.tf.config.list_logical_devices()]

    def dtypes(self, device: str) -> list[str]:
        return ["float32", "float64"]

    def _const(self, values: Any, dtype: str) -> Any:
        return self.tf.constant(np.asarray(values), dtype=getattr(self.tf, dtype))

    @staticmethod
    def _np(t: Any) -> grid.Array:
        return np.asarray(t.numpy(), dtype=np.float64)

    def activation_value_grad(
        self, device: str, dtype: str, name: str, x: grid.Array, alpha: float
    ) -> tuple[grid.Array, grid.Array, grid.Array]:
        tf = self.tf
        with tf.device(device):
            xt = self._const(x, dtype)
            at = self._const(np.full(x.shape, alpha), dtype)
            with tf.GradientTape() as tape:
                tape.watch([xt, at])
                value = self.acts[name](xt, at)
            dx, da = tape.gradient(value, [xt, at])
        zeros = np.zeros_like(x)
        return (
            self._np(value),
            zeros if dx is None else self._np(dx),
            zeros if da is None else self._np(da),
        )

    def loss_value_grad(
        self, device: str, dtype: str, name: str, f: grid.Array, y: grid.Array
    ) -> tuple[grid.Array, grid.Array]:
        tf = self.tf
        with tf.device(device):
            ft = self._const(f, dtype)
            with tf.GradientTape() as tape:
                tape.watch(ft)
                value = self.losses[name](ft, self._const(y, dtype))
            df = tape.gradient(value, ft)
        return self._np(value), self._np(df)

    def zero_one(self, device: str, dtype: str, f: grid.Array, y: grid.Array) -> grid.Array:
        tf = self.tf
        with tf.device(device):
            ft = self._const(f, dtype)
            pred = tf.where(ft > 0, tf.ones_like(ft), -tf.ones_like(ft))
            return self._np(tf.cast(tf.not_equal(pred, self._const(y, dtype)), ft.dtype))

    def kernel_ops(self, device: str) -> TensorFlowKernels:
        return TensorFlowKernels(self.tf, device)

    def trainer(self, device: str, plan: grid.Plan) -> TensorFlowTrainer:
        return TensorFlowTrainer(self, device, plan)

    def peak_device_memory(self, device: str) -> int | None:
        if not device.upper().startswith("GPU"):
            return None
        info = self.tf.config.experimental.get_memory_info(device)
        return int(info["peak"])


class TensorFlowKernels:
    """The kernel tier's operations in TensorFlow on one device (:class:`worker_kernels.KernelOps`).

    One thread count: TensorFlow fixes its thread pools when its runtime starts (one thread here,
    as the grid runs).
    """

    def __init__(self, tf: Any, device: str) -> None:
        self.tf = tf
        self.device = device

    def matmul_dtypes(self) -> list[str]:
        if self.device.upper().startswith("GPU"):
            return ["float32", "tf32", "float16"]
        return ["float32", "float64"]

    def thread_counts(self) -> list[int]:
        return [1]

    def set_threads(self, n: int) -> None:
        return None

    def _c(self, values: Any, dtype: str) -> Any:
        kind = "float32" if dtype == "tf32" else dtype
        return self.tf.constant(np.asarray(values), dtype=getattr(self.tf, kind))

    @staticmethod
    def _np(t: Any) -> grid.Array:
        return np.asarray(t.numpy(), dtype=np.float64)

    def matmul(self, a: Any, b: Any, dtype: str) -> grid.Array:
        tf = self.tf
        with tf.device(self.device):
            if dtype != "tf32":
                return self._np(tf.linalg.matmul(self._c(a, dtype), self._c(b, dtype)))
            tf.config.experimental.enable_tensor_float_32_execution(True)
            try:
                return self._np(tf.linalg.matmul(self._c(a, dtype), self._c(b, dtype)))
            finally:
                tf.config.experimental.enable_tensor_float_32_execution(False)

    def conv2d(self, x: Any, w: Any, dtype: str) -> grid.Array:
        tf = self.tf
        with tf.device(self.device):
            nhwc = self._c(np.transpose(x, (0, 2, 3, 1)), dtype)
            hwio = self._c(np.transpose(w, (2, 3, 1, 0)), dtype)
            out = tf.nn.conv2d(nhwc, hwio, strides=1, padding="VALID")
        return np.transpose(self._np(out), (0, 3, 1, 2))

    def reduce(self, name: str, x: Any, dtype: str) -> grid.Array:
        tf = self.tf
        ops = {
            "sum": tf.reduce_sum,
            "mean": tf.reduce_mean,
            "softmax": tf.nn.softmax,
            "logsumexp": tf.reduce_logsumexp,
        }
        with tf.device(self.device):
            return self._np(ops[name](self._c(x, dtype)))

    def unary(self, name: str, x: Any, dtype: str) -> grid.Array:
        tf = self.tf
        ops = {
            "exp": tf.exp,
            "log": tf.math.log,
            "tanh": tf.tanh,
            "sigmoid": tf.sigmoid,
            "erf": tf.math.erf,
        }
        with tf.device(self.device):
            return self._np(ops[name](self._c(x, dtype)))

    def prepare(self, kernel: str, *inputs: Any) -> Callable[[], Any]:
        tf = self.tf
        with tf.device(self.device):
            args = [self._c(v, "float32") for v in inputs]
        fn = {"matmul": tf.linalg.matmul, "sum": tf.reduce_sum}.get(kernel, tf.exp)

        def call() -> Any:
            with tf.device(self.device):
                out = fn(*args)
            # Waits for the device. The whole of matmul's small result (48 KiB): slicing it first
            # is one more eager operation, a fixed cost the gate would read as matmul's.
            return out.numpy() if kernel == "matmul" or out.shape.rank == 0 else out[:1].numpy()

        return call


class TensorFlowTrainer:
    """All models of a plan as stacked variables; one traced function runs n steps in the graph."""

    def __init__(self, backend: TensorFlowBackend, device: str, plan: grid.Plan) -> None:
        tf = backend.tf
        self.b = backend
        self.device = device
        self.plan = plan
        m = len(plan.combos)
        shapes = {
            "w1": (m, 2, grid.HIDDEN),
            "b1": (m, grid.HIDDEN),
            "w2": (m, grid.HIDDEN),
            "b2": (m,),
            "alpha": (m,),
        }
        with tf.device(device):
            self.vars = {k: tf.Variable(tf.zeros(s, tf.float32), name=k) for k, s in shapes.items()}
        self.names = list(self.vars)
        self.loss_idx = [(n, tf.constant(idx, tf.int32)) for n, idx in plan.loss_groups]
        self.inverse = tf.constant(plan.inverse, tf.int32)
        self.loop = tf.function(self._loop, autograph=False)

    def _forward(self, x: Any, y: Any) -> tuple[Any, Any]:
        tf = self.b.tf
        p = self.vars
        z = tf.einsum("nd,mdh->mnh", x, p["w1"]) + p["b1"][:, None, :]  # (M, N, H)
        alpha = p["alpha"][:, None, None]
        h = tf.concat(
            [self.b.acts[a](z[s:e], alpha[s:e]) for a, s, e in self.plan.act_groups], axis=0
        )
        f = tf.einsum("mnh,mh->mn", h, p["w2"]) + p["b2"][:, None]  # (M, N)
        per_group = [
            tf.reduce_mean(self.b.losses[n](tf.gather(f, idx), y), axis=1)
            for n, idx in self.loss_idx
        ]
        losses = tf.gather(tf.concat(per_group, axis=0), self.inverse)
        return losses, f

    def _step(self, x: Any, y: Any, lr: Any) -> tuple[Any, Any]:
        """One plain-GD step of every model (lr 0: evaluate only); returns losses and scores."""
        tf = self.b.tf
        with tf.GradientTape() as tape:
            losses, f = self._forward(x, y)
            total = tf.reduce_sum(losses)
        grads = tape.gradient(total, [self.vars[k] for k in self.names])
        for k, g in zip(self.names, grads, strict=True):
            if g is not None:  # alpha is unused when no model is PReLU
                v = self.vars[k]
                v.assign_sub(tf.reshape(lr, [-1] + [1] * (len(v.shape) - 1)) * g)
        return losses, f

    def _loop(self, x: Any, y: Any, lr: Any, n: Any) -> tuple[Any, Any]:
        """``n`` steps inside the graph; returns the losses before each step and the last scores.

        Written with an explicit ``tf.while_loop`` and traced with autograph off: converting the
        Python code costs more than the whole training (autograph also imports Keras).
        """
        tf = self.b.tf
        m = len(self.plan.combos)

        def body(i: Any, curve: Any, f: Any) -> tuple[Any, Any, Any]:
            losses, f = self._step(x, y, lr)
            return i + 1, curve.write(i, losses), f

        _, curve, f = tf.while_loop(
            lambda i, curve, f: i < n,
            body,
            (
                tf.constant(0),
                tf.TensorArray(tf.float32, size=n, element_shape=[m]),
                tf.zeros([m, grid.N_SAMPLES], tf.float32),
            ),
        )
        return curve.stack(), f

    def run(
        self,
        init: dict[str, grid.Array],
        x: grid.Array,
        y: grid.Array,
        *,
        lr: grid.Array,
        steps: int,
    ) -> grid.TrainOutput:
        tf = self.b.tf
        with tf.device(self.device):
            for k, v in self.vars.items():
                v.assign(tf.constant(init[k], tf.float32))
            xt, yt = tf.constant(x, tf.float32), tf.constant(y, tf.float32)
            lr_t = tf.constant(lr, tf.float32)
            t0 = time.perf_counter()
            first, _ = self.loop(xt, yt, lr_t, tf.constant(1))
            after_first = {k: self.b._np(v) for k, v in self.vars.items()}
            kept = [[tf.identity(self.vars[k]) for k in self.names]]
            warmup = time.perf_counter() - t0
            t0 = time.perf_counter()
            curves = [first]
            clock = ChunkClock(clock=timing_clock(self.device))
            left = steps - 1
            while left > 0:  # in timed chunks, the calibration kernel between them
                n = min(TIMING_CHUNK, left)
                clock.begin()
                chunk, _ = self.loop(xt, yt, lr_t, tf.constant(n))
                chunk.numpy()  # wait for the device
                clock.steps_done(n)
                curves.append(chunk)
                kept.append([tf.identity(self.vars[k]) for k in self.names])  # a checkpoint
                left -= n
            last, f = self.loop(xt, yt, tf.zeros_like(lr_t), tf.constant(1))  # evaluate only
            curves.append(last)
            curve_np = self.b._np(tf.concat(curves, axis=0))
            loop = time.perf_counter() - t0 - clock.kernel_s
            params = {
                k: self.b._np(tf.stack([c[j] for c in kept])) for j, k in enumerate(self.names)
            }
        return grid.TrainOutput(curve_np, after_first, self.b._np(f), warmup, loop, clock, params)


if __name__ == "__main__":
    protocol.exit_now(protocol.main("tensorflow", load))
