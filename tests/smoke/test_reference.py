"""The NumPy reference against values computed by hand from the seed's formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlsetup.smoke import reference as ref
from dlsetup.smoke import worker_grid as core


def a(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def test_sigmoid_and_its_derivative_match_one_over_one_plus_e_to_minus_x() -> None:
    assert ref.activation("sigmoid", a(0.0, 2.0)).tolist() == pytest.approx(
        [0.5, 1 / (1 + math.exp(-2))]
    )
    assert ref.activation_grad("sigmoid", a(0.0))[0] == pytest.approx(0.25)


def test_saturated_sigmoid_neither_overflows_nor_loses_its_tiny_gradient() -> None:
    with np.errstate(over="raise", invalid="raise"):
        values = ref.activation("sigmoid", a(-800.0, 800.0))
        grads = ref.activation_grad("sigmoid", a(-50.0, 50.0))
    assert values.tolist() == [0.0, 1.0]
    assert grads.tolist() == pytest.approx([math.exp(-50)] * 2, rel=1e-12)


def test_tanh_is_e_x_minus_e_minus_x_over_their_sum() -> None:
    e, ei = math.e, 1 / math.e
    assert ref.activation("tanh", a(1.0))[0] == pytest.approx((e - ei) / (e + ei))
    assert ref.activation_grad("tanh", a(1.0))[0] == pytest.approx(1 - ((e - ei) / (e + ei)) ** 2)


def test_relu_leaky_relu_and_prelu_use_the_seeds_x_le_0_branch_at_zero() -> None:
    x = a(-3.0, 0.0, 2.0)
    assert ref.activation("relu", x).tolist() == [0.0, 0.0, 2.0]
    assert ref.activation_grad("relu", x).tolist() == [0.0, 0.0, 1.0]
    assert ref.activation("leaky_relu", x).tolist() == pytest.approx([-0.6, 0.0, 2.0])
    assert ref.activation_grad("leaky_relu", x).tolist() == [0.2, 0.2, 1.0]
    assert ref.activation("prelu", x, alpha=0.5).tolist() == [-1.5, 0.0, 2.0]
    assert ref.activation_grad("prelu", x, alpha=0.5).tolist() == [0.5, 0.5, 1.0]
    assert ref.prelu_alpha_grad(x).tolist() == [-3.0, 0.0, 0.0]


def test_elu_is_alpha_times_e_x_minus_one_below_zero_and_x_from_zero_on() -> None:
    x = a(-1.0, 0.0, 3.0)
    assert ref.activation("elu", x).tolist() == pytest.approx([math.exp(-1) - 1, 0.0, 3.0])
    assert ref.activation_grad("elu", x).tolist() == pytest.approx([math.exp(-1), 1.0, 1.0])


def test_losses_match_the_seeds_formulas_with_the_documented_labels() -> None:
    y_pos, y_neg = a(1.0), a(-1.0)
    assert ref.loss("absolute", a(0.25), y_pos)[0] == 0.75
    assert ref.loss("square", a(0.25), y_pos)[0] == 0.5625
    assert ref.loss("exponential", a(0.5), y_pos)[0] == pytest.approx(math.exp(-0.5))
    assert ref.loss("hinge", a(0.5), y_neg)[0] == 1.5
    assert ref.loss("hinge", a(2.0), y_pos)[0] == 0.0
    # -log P(y|x) with P(y=1|x) = sigmoid(f): at f = 0 both classes have P = 1/2
    assert ref.loss("log", a(0.0), y_pos)[0] == pytest.approx(math.log(2))
    # cross-entropy with t = 0 (y = -1): -ln(1 - a), a = sigmoid(2)
    assert ref.loss("cross_entropy", a(2.0), y_neg)[0] == pytest.approx(
        -math.log(1 - 1 / (1 + math.exp(-2)))
    )


def test_perceptron_loss_is_the_standard_max_0_minus_y_f_not_the_seeds_label_free_form() -> None:
    # the seed's max(0, -f) would give 0 here: a confident wrong answer for a negative label
    assert ref.loss("perceptron", a(0.5), a(-1.0))[0] == 0.5
    assert ref.loss("perceptron", a(0.5), a(1.0))[0] == 0.0
    assert ref.loss("perceptron", a(-0.5), a(1.0))[0] == 0.5


def test_zero_one_loss_counts_wrong_signs_and_trains_on_a_sigmoid_surrogate() -> None:
    f, y = a(0.3, -0.3, 0.0, 0.0), a(-1.0, -1.0, 1.0, -1.0)
    assert ref.loss("zero_one", f, y).tolist() == [1.0, 0.0, 1.0, 0.0]
    surrogate = ref.training_loss("zero_one", a(0.0), a(1.0))[0]
    assert surrogate == 0.5
    assert ref.training_loss_grad("zero_one", a(0.0), a(1.0))[0] == pytest.approx(
        -ref.ZERO_ONE_SHARPNESS / 4
    )


@pytest.mark.parametrize("name", ref.LOSSES)
def test_loss_derivatives_match_central_differences_away_from_kinks(name: str) -> None:
    f = a(-1.7, -0.3, 0.4, 1.3)
    y = a(1.0, -1.0, 1.0, -1.0)
    h = 1e-6
    numeric = (ref.training_loss(name, f + h, y) - ref.training_loss(name, f - h, y)) / (2 * h)
    assert ref.training_loss_grad(name, f, y) == pytest.approx(numeric, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("act", ref.ACTIVATIONS)
@pytest.mark.parametrize("loss", ["square", "cross_entropy", "hinge", "zero_one"])
def test_gd_step_moves_every_weight_by_minus_lr_times_its_finite_difference_gradient(
    act: str, loss: str
) -> None:
    x, y = core.make_data(3)
    x, y = x[:8], y[:8]
    init = core.init_params(3, 1)
    init["w2"] = init["w2"] * 30  # a non-trivial output so every branch is exercised
    p = core.model_params(init, 0)
    lr = 0.1
    _, stepped = ref.gd_step(p, x, y, act, loss, lr=lr)

    def mean_loss(params: ref.Params) -> float:
        return float(np.mean(ref.training_loss(loss, ref.forward(params, x, act)[2], y)))

    for name in core.PARAM_NAMES:
        base = getattr(p, name)
        flat = base.reshape(-1)
        numeric = np.zeros_like(flat)
        for i in range(flat.size):
            up, down = flat.copy(), flat.copy()
            up[i] += 1e-6
            down[i] -= 1e-6
            plus = ref.Params(**{**p.__dict__, name: up.reshape(base.shape)})
            minus = ref.Params(**{**p.__dict__, name: down.reshape(base.shape)})
            numeric[i] = (mean_loss(plus) - mean_loss(minus)) / 2e-6
        expected = flat - lr * numeric
        assert getattr(stepped, name).reshape(-1) == pytest.approx(expected, rel=1e-5, abs=1e-7), (
            name
        )


def test_runner_reads_the_line_prefix_the_workers_write() -> None:
    from dlsetup.smoke import runner, worker_protocol

    # the runner keeps its own copy: importing worker_protocol would put its directory on sys.path
    assert runner.LINE_PREFIX == worker_protocol.LINE_PREFIX


@pytest.mark.parametrize("seed", [0, 7])
def test_the_stacked_reference_curves_are_gd_step_repeated_on_each_model(seed: int) -> None:
    combos = core.combinations()
    x, y = core.make_data(seed)
    init = core.init_params(seed, len(combos))
    lr = np.array([core.LEARNING_RATES[loss] for _, loss in combos])
    curves = ref.train_curves(combos, init, x, y, lr=lr, steps=30).loss
    assert curves.shape == (31, len(combos))
    for i, (act, loss) in enumerate(combos):
        p = core.model_params(init, i)
        values = []
        for _ in range(30):
            value, p = ref.gd_step(p, x, y, act, loss, lr=float(lr[i]))
            values.append(value)
        values.append(float(np.mean(ref.training_loss(loss, ref.forward(p, x, act)[2], y))))
        assert curves[:, i] == pytest.approx(values, rel=1e-12, abs=1e-15), (act, loss)


def test_the_stacked_reference_of_a_subset_matches_the_full_grid() -> None:
    combos = core.combinations()
    x, y = core.make_data(1)
    init = core.init_params(1, len(combos))
    lr = np.array([core.LEARNING_RATES[loss] for _, loss in combos])
    full = ref.train_curves(combos, init, x, y, lr=lr, steps=20).loss
    for i in (0, 13, 36):  # one model alone, as the isolated rerun trains it
        sub = {k: v[i : i + 1] for k, v in init.items()}
        alone = ref.train_curves([combos[i]], sub, x, y, lr=lr[i : i + 1], steps=20).loss
        assert alone[:, 0] == pytest.approx(full[:, i], rel=1e-12, abs=1e-15)


def test_the_band_is_float32_roundoff_growing_with_the_steps() -> None:
    from dlsetup.smoke import curve_band

    reference = np.array([0.5, 0.5, 3.0])
    allowed = curve_band.band(reference)
    u = 2.0**-24
    assert allowed == pytest.approx([16 * u * 4, 16 * u * 5, 16 * u * 6 * 3.0])
    assert curve_band.first_exit(reference + allowed * 0.99, reference) is None
    assert curve_band.first_exit(a(0.5, 0.6, 3.0), reference) == (1, 0.6, 0.5, allowed[1])
    assert curve_band.first_exit(a(0.5, 0.5, math.nan), reference) == (
        2,
        pytest.approx(math.nan, nan_ok=True),
        3.0,
        allowed[2],
    )
