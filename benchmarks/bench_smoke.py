"""Benchmark: the smoke's stacked 48-model grid against the obvious per-combination loops.

Run: ``python benchmarks/bench_smoke.py [--steps 200] [--keras-subset 6] [--eager-subset 48]``

Side by side, in one process, for 6 activations x 8 losses x STEPS steps of a 2-16-1 network on CPU:

* torch, obvious: one ``nn.Sequential`` + ``torch.optim.SGD`` per combination, eager;
* torch, ours: all 48 models as stacked weights (``torch_worker.TorchTrainer``);
* TensorFlow, obvious: one set of variables per combination, eager ``GradientTape`` loop;
* TensorFlow, obvious: one Keras model per combination, ``compile`` + ``fit``;
* TensorFlow, the standard TF2 custom loop: one ``@tf.function`` training step per combination,
  traced once per combination (tracing included), called once per step;
* TensorFlow, ours: all 48 models as stacked variables, one ``tf.function`` (trace included);
* the whole ``dlsetup smoke --device cpu`` (both frameworks, all checks, and each alone) as a
  subprocess, wall time, beside each framework's bare ``import`` in a fresh interpreter, in
  alternating rounds of the same run (``--repeats``, default 5): medians, spreads, and per round
  the whole smoke of both minus the slower framework's bare import (target: at most +2 s, issue
  24's bound with the kernel tier; +1.5 s before it).
  ``--whole-process-only`` times only these.

Two kinds of ratio are printed: training time (the loops above, in this process) and whole
process (a fresh interpreter that imports the framework and runs the per-combination loop,
estimated as bare import + loop, against the whole ``dlsetup smoke --framework X``). Every
framework runs at one thread, as the smoke's workers do.

The Keras loop takes seconds per combination, so by default it is timed on a subset of
combinations (one per activation) and extrapolated to 48; ``--keras-subset 48`` times them all.
The output says which figures are extrapolated.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "dlsetup" / "smoke"))

import numpy as np  # noqa: E402
import reference as ref  # noqa: E402
import worker_grid as core  # noqa: E402

COMBOS = core.combinations()


def spread(combos: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """n combinations spread over the grid (every activation and loss appears when n >= 8)."""
    if n >= len(combos):
        return combos
    step = len(combos) / n
    picked = [combos[int(i * step + (i % 8) % step)] for i in range(n)]
    return list(dict.fromkeys(picked))


# ------------------------------------------------------------------ torch


def torch_obvious(steps: int, x: np.ndarray, y: np.ndarray) -> float:
    import torch
    import torch_worker

    backend = torch_worker.TorchBackend(torch)
    act_modules = {
        "sigmoid": torch.nn.Sigmoid,
        "tanh": torch.nn.Tanh,
        "relu": torch.nn.ReLU,
        "leaky_relu": lambda: torch.nn.LeakyReLU(ref.LEAKY_SLOPE),
        "prelu": torch.nn.PReLU,
        "elu": torch.nn.ELU,
    }
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    t0 = time.perf_counter()
    for act, loss in COMBOS:
        model = torch.nn.Sequential(
            torch.nn.Linear(2, 16), act_modules[act](), torch.nn.Linear(16, 1)
        )
        opt = torch.optim.SGD(model.parameters(), lr=core.LEARNING_RATES[loss])
        for _ in range(steps):
            opt.zero_grad()
            value = backend.losses[loss](model(xt)[:, 0], yt).mean()
            value.backward()
            opt.step()
    return time.perf_counter() - t0


def torch_ours(steps: int, x: np.ndarray, y: np.ndarray) -> float:
    import torch
    import torch_worker

    backend = torch_worker.TorchBackend(torch)
    init = core.init_params(0, len(COMBOS))
    lr = np.array([core.LEARNING_RATES[loss] for _, loss in COMBOS])
    t0 = time.perf_counter()
    backend.trainer("cpu", core.make_plan(COMBOS)).run(init, x, y, lr=lr, steps=steps)
    return time.perf_counter() - t0


# ------------------------------------------------------------------ TensorFlow


def _keras_acts() -> dict[str, object]:
    import tensorflow as tf

    keras = tf.keras
    return {
        "sigmoid": lambda: keras.layers.Activation("sigmoid"),
        "tanh": lambda: keras.layers.Activation("tanh"),
        "relu": lambda: keras.layers.Activation("relu"),
        "leaky_relu": lambda: keras.layers.LeakyReLU(negative_slope=ref.LEAKY_SLOPE),
        "prelu": lambda: keras.layers.PReLU(),
        "elu": lambda: keras.layers.Activation("elu"),
    }


KERAS_ACTS: dict[str, object] = {}


def tf_eager_keras(
    steps: int, x: np.ndarray, y: np.ndarray, combos: list[tuple[str, str]]
) -> float:
    """The obvious eager loop: a Keras model and optimizer per combination, GradientTape steps."""
    import tensorflow as tf
    import tf_worker

    keras = tf.keras
    backend = tf_worker.TensorFlowBackend(tf)
    xt, yt = tf.constant(x, tf.float32), tf.constant(y, tf.float32)
    t0 = time.perf_counter()
    for act, loss in combos:
        model = keras.Sequential(
            [keras.Input((2,)), keras.layers.Dense(16), KERAS_ACTS[act](), keras.layers.Dense(1)]
        )
        opt = keras.optimizers.SGD(core.LEARNING_RATES[loss])
        for _ in range(steps):
            with tf.GradientTape() as tape:
                value = tf.reduce_mean(backend.losses[loss](model(xt)[:, 0], yt))
            grads = tape.gradient(value, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return time.perf_counter() - t0


def _tf_variables(tf: Any, init: dict[str, np.ndarray]) -> list[Any]:
    """One combination's ``[w1, b1, w2, b2, alpha]`` as variables, from the grid's first model."""
    return [
        tf.Variable(init["w1"][0], dtype=tf.float32),
        tf.Variable(init["b1"][0], dtype=tf.float32),
        tf.Variable(init["w2"][0][:, None], dtype=tf.float32),
        tf.Variable(0.0),
        tf.Variable(ref.PRELU_INIT),
    ]


def tf_eager(steps: int, x: np.ndarray, y: np.ndarray, combos: list[tuple[str, str]]) -> float:
    """A leaner eager loop: raw variables per combination, GradientTape, assign_sub."""
    import tensorflow as tf
    import tf_worker

    backend = tf_worker.TensorFlowBackend(tf)
    xt, yt = tf.constant(x, tf.float32), tf.constant(y, tf.float32)
    init = core.init_params(0, 1)
    t0 = time.perf_counter()
    for act, loss in combos:
        params = _tf_variables(tf, init)
        w1, b1, w2, b2, alpha = params
        lr = core.LEARNING_RATES[loss]
        for _ in range(steps):
            with tf.GradientTape() as tape:
                h = backend.acts[act](tf.matmul(xt, w1) + b1, alpha)
                f = tf.matmul(h, w2)[:, 0] + b2
                value = tf.reduce_mean(backend.losses[loss](f, yt))
            for p, g in zip(params, tape.gradient(value, params), strict=True):
                if g is not None:
                    p.assign_sub(lr * g)
    return time.perf_counter() - t0


def tf_keras(steps: int, x: np.ndarray, y: np.ndarray, combos: list[tuple[str, str]]) -> float:
    import tensorflow as tf
    import tf_worker

    keras = tf.keras
    backend = tf_worker.TensorFlowBackend(tf)
    act_layers = KERAS_ACTS
    xs, ys = x.astype("float32"), y.astype("float32")
    t0 = time.perf_counter()
    for act, loss in combos:
        model = keras.Sequential(
            [keras.Input((2,)), keras.layers.Dense(16), act_layers[act](), keras.layers.Dense(1)]
        )

        def loss_fn(y_true, y_pred, loss=loss):
            return tf.reduce_mean(backend.losses[loss](y_pred[:, 0], y_true[:, 0]))

        model.compile(optimizer=keras.optimizers.SGD(core.LEARNING_RATES[loss]), loss=loss_fn)
        model.fit(xs, ys[:, None], epochs=steps, batch_size=len(xs), verbose=0)
    return time.perf_counter() - t0


def tf_function_step(
    steps: int, x: np.ndarray, y: np.ndarray, combos: list[tuple[str, str]]
) -> float:
    """The standard TF2 custom loop: per combination, variables and a ``@tf.function`` step
    (traced on its first call, so once per combination), called ``steps`` times."""
    import tensorflow as tf
    import tf_worker

    backend = tf_worker.TensorFlowBackend(tf)
    xt, yt = tf.constant(x, tf.float32), tf.constant(y, tf.float32)
    init = core.init_params(0, 1)
    t0 = time.perf_counter()
    for act, loss in combos:
        params = _tf_variables(tf, init)
        lr = core.LEARNING_RATES[loss]

        @tf.function
        def step(act: str = act, loss: str = loss, params: list = params, lr: float = lr):
            w1, b1, w2, b2, alpha = params
            with tf.GradientTape() as tape:
                h = backend.acts[act](tf.matmul(xt, w1) + b1, alpha)
                f = tf.matmul(h, w2)[:, 0] + b2
                value = tf.reduce_mean(backend.losses[loss](f, yt))
            for p, g in zip(params, tape.gradient(value, params), strict=True):
                if g is not None:
                    p.assign_sub(lr * g)
            return value

        for _ in range(steps):
            step()
    return time.perf_counter() - t0


def tf_ours(steps: int, x: np.ndarray, y: np.ndarray) -> float:
    import tensorflow as tf
    import tf_worker

    backend = tf_worker.TensorFlowBackend(tf)
    init = core.init_params(0, len(COMBOS))
    lr = np.array([core.LEARNING_RATES[loss] for _, loss in COMBOS])
    t0 = time.perf_counter()
    backend.trainer("CPU:0", core.make_plan(COMBOS)).run(init, x, y, lr=lr, steps=steps)
    return time.perf_counter() - t0


def whole_smoke(*frameworks: str) -> float:
    """Wall seconds of ``dlsetup smoke --device cpu`` (all checks) for ``frameworks`` (both when
    empty, named on the command line as ``--framework torch --framework tensorflow``)."""
    names = frameworks or ("torch", "tensorflow")
    args = [a for fw in names for a in ("--framework", fw)]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "dlsetup", "smoke", *args, "--device", "cpu"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:])
        raise SystemExit(f"dlsetup smoke failed (exit {proc.returncode}): no figure")
    return wall


def bare_import(module: str) -> float:
    """Wall seconds of one fresh interpreter that imports ``module`` and exits."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], env=env, check=True)
    return time.perf_counter() - t0


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


RESULTS: dict[str, float] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eager-subset", type=int, default=48, help="TF eager combinations timed")
    parser.add_argument("--keras-subset", type=int, default=6, help="Keras combinations timed")
    parser.add_argument(
        "--function-subset", type=int, default=48, help="TF @tf.function combinations timed"
    )
    parser.add_argument("--only", choices=["torch", "tensorflow"], help="time one framework only")
    parser.add_argument(
        "--repeats", type=int, default=5, help="alternating rounds of the whole-process figures"
    )
    parser.add_argument(
        "--whole-process-only",
        action="store_true",
        help="skip the training-time yardsticks; time only bare imports and whole smokes",
    )
    args = parser.parse_args()
    x, y = core.make_data(0)
    print(f"48 combinations x {args.steps} steps, 2-16-1 network, CPU, {os.cpu_count()} cores")
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")

    if args.only != "tensorflow" and not args.whole_process_only:
        bench_torch(args.steps, x, y)
    if args.only != "torch" and not args.whole_process_only:
        bench_tf(args, x, y)
    whole_process(args.only, args.repeats)


def whole_process(only: str | None, repeats: int) -> None:
    """Whole-process figures: bare imports and whole smokes, alternating, ``repeats`` rounds.

    Each round times, one after the other, each framework's bare import, the whole smoke of each
    framework alone and the whole smoke of both; the difference that matters (both frameworks'
    smoke minus the slower framework's bare import) is taken within each round, so a busy moment
    of a shared machine affects both sides of it. Medians and the spread (min to max) are printed.
    """
    frameworks = [fw for fw in ("torch", "tensorflow") if only in (None, fw)]
    imports: dict[str, list[float]] = {fw: [] for fw in frameworks}
    walls: dict[str, list[float]] = {fw: [] for fw in frameworks}
    both: list[float] = []
    over: list[float] = []
    for i in range(repeats):
        for fw in frameworks:
            imports[fw].append(bare_import(fw))
        for fw in frameworks:
            walls[fw].append(whole_smoke(fw))
        if only is None:
            both.append(whole_smoke())
            slower = max(imports[fw][-1] for fw in frameworks)
            over.append(both[-1] - slower)
            print(
                f"round {i + 1}: bare imports "
                + ", ".join(f"{fw} {imports[fw][-1]:.2f} s" for fw in frameworks)
                + f"; whole smoke of both {both[-1]:.2f} s ({over[-1]:+.2f} s over the slower"
                f" import); load {os.getloadavg()[0]:.2f}"
            )

    def figure(values: list[float]) -> str:
        return f"{median(values):8.2f} s  (median of {len(values)}, {min(values):.2f}-{max(values):.2f})"

    for fw in frameworks:
        print(
            f"bare `import {fw}` in a fresh interpreter:{' ' * (16 - len(fw))}{figure(imports[fw])}"
        )
        print(f"whole `dlsetup smoke --framework {fw}`:{' ' * (17 - len(fw))}{figure(walls[fw])}")
    for name, loop in sorted(RESULTS.items()):
        fw = "torch" if name.startswith("torch") else "tensorflow"
        if fw in walls:
            total = median(imports[fw]) + loop
            print(
                f"  whole-process ratio, {name} (import + loop {total:.2f} s) vs the whole "
                f"smoke of {fw}: {total / median(walls[fw]):.1f}x"
            )
    if only is None:
        print("whole `dlsetup smoke --framework torch --framework tensorflow --device cpu`:")
        print(f"  wall:                                          {figure(both)}")
        print(
            f"  minus the slower framework's bare import, per round: {median(over):+.2f} s"
            f"  (median of {len(over)}, {min(over):+.2f} to {max(over):+.2f}; target <= +2 s)"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


def bench_torch(steps: int, x: np.ndarray, y: np.ndarray) -> None:
    import torch

    torch.set_num_threads(1)  # as the smoke worker does; tiny tensors gain nothing from more
    t_obv = torch_obvious(steps, x, y)
    t_ours = torch_ours(steps, x, y)
    print(f"torch per combination (nn.Sequential + SGD, eager, 1 thread): {t_obv:8.2f} s")
    print(f"torch ours (stacked, one batched program, 1 thread):         {t_ours:8.2f} s")
    print(f"  training-time ratio: {t_obv / t_ours:.1f}x   (target >= 10x)")
    RESULTS["torch per-combination loop"] = t_obv


def bench_tf(args: argparse.Namespace, x: np.ndarray, y: np.ndarray) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)  # as the smoke worker does
    tf.config.threading.set_inter_op_parallelism_threads(1)
    n = len(COMBOS)

    KERAS_ACTS.update(_keras_acts())
    t_tf = tf_ours(args.steps, x, y)  # cold: TensorFlow's first-function overhead included
    t_tf_warm = tf_ours(args.steps, x, y)  # a second trainer (traced again) in a warm process
    eager_combos = spread(COMBOS, args.eager_subset)
    t_eager = tf_eager_keras(args.steps, x, y, eager_combos) * n / len(eager_combos)
    t_raw = tf_eager(args.steps, x, y, eager_combos) * n / len(eager_combos)
    function_combos = spread(COMBOS, args.function_subset)
    t_function = tf_function_step(args.steps, x, y, function_combos) * n / len(function_combos)
    keras_combos = spread(COMBOS, args.keras_subset)
    t_keras = tf_keras(args.steps, x, y, keras_combos) * n / len(keras_combos)
    eager_note = (
        "" if len(eager_combos) == n else f" (timed {len(eager_combos)}, extrapolated to 48)"
    )
    keras_note = (
        "" if len(keras_combos) == n else f" (timed {len(keras_combos)}, extrapolated to 48)"
    )
    function_note = (
        "" if len(function_combos) == n else f" (timed {len(function_combos)}, extrapolated)"
    )
    print(
        f"TF eager GradientTape per combination (Keras model):        {t_eager:8.2f} s{eager_note}"
    )
    print(f"TF eager GradientTape per combination (raw variables):      {t_raw:8.2f} s{eager_note}")
    print(
        f"TF @tf.function step per combination (traced once each):    {t_function:8.2f} s"
        f"{function_note}"
    )
    print(
        f"TF Keras compile + fit per combination:                     {t_keras:8.2f} s{keras_note}"
    )
    print(f"TF ours (stacked, one tf.function, tracing included), cold:  {t_tf:8.2f} s")
    print(f"TF ours, a second trainer in the same process (warm):       {t_tf_warm:8.2f} s")
    for name, t in (
        ("@tf.function step", t_function),
        ("eager (raw variables)", t_raw),
        ("eager (Keras model)", t_eager),
        ("Keras fit", t_keras),
    ):
        print(
            f"  training-time ratio vs {name}: {t / t_tf:.1f}x cold, {t / t_tf_warm:.1f}x warm"
            "   (target >= 10x)"
        )
    RESULTS["tensorflow @tf.function step per combination"] = t_function
    RESULTS["tensorflow Keras fit per combination"] = t_keras


if __name__ == "__main__":
    main()
