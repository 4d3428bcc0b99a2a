"""The grid's NumPy reference, shared by the workers of one run through a file
(``worker_reference.shared``): read only when it was made for the same grid, else computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlsetup.smoke import worker_grid as grid
from dlsetup.smoke import worker_reference as wr

STEPS = 12


def inputs(seed: int) -> tuple[list[tuple[str, str]], dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    combos = grid.combinations()
    x, y = grid.make_data(seed)
    init = grid.init_params(seed, len(combos))
    lr = np.array([grid.LEARNING_RATES[loss] for _, loss in combos])
    return combos, init, x, y, lr


def shared(path: Path, seed: int, steps: int = STEPS) -> wr.GridReference:
    combos, init, x, y, lr = inputs(seed)
    return wr.shared(str(path), combos, init, x, y, lr=lr, steps=steps)


def same(a: wr.GridReference, b: wr.GridReference) -> bool:
    assert a.first_losses is not None and b.first_losses is not None
    assert a.first_after is not None and b.first_after is not None
    return (
        np.array_equal(a.curves.loss, b.curves.loss)
        and np.array_equal(a.curves.kink, b.curves.kink)
        and np.array_equal(a.first_losses, b.first_losses)
        and all(np.array_equal(a.first_after[k], b.first_after[k]) for k in grid.PARAM_NAMES)
    )


def test_the_second_worker_reads_exactly_what_the_first_computed(tmp_path: Path) -> None:
    path = tmp_path / "reference.npz"
    first = shared(path, seed=0)
    assert first.shared is False and path.is_file()
    second = shared(path, seed=0)
    assert second.shared is True
    assert same(first, second)
    combos, init, x, y, lr = inputs(0)
    here = wr.compute(combos, init, x, y, lr=lr, steps=STEPS, step_check=True)
    assert same(second, here)  # bit for bit what the reader would have computed itself
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize(
    ("seed", "steps"), [(1, STEPS), (0, STEPS + 1)], ids=["another_seed", "more_steps"]
)
def test_a_reference_made_for_another_grid_is_not_used(
    tmp_path: Path, seed: int, steps: int
) -> None:
    path = tmp_path / "reference.npz"
    shared(path, seed=0)
    other = shared(path, seed=seed, steps=steps)
    assert other.shared is False
    combos, init, x, y, lr = inputs(seed)
    assert same(other, wr.compute(combos, init, x, y, lr=lr, steps=steps, step_check=True))


def test_a_reference_for_other_learning_rates_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "reference.npz"
    shared(path, seed=0)
    combos, init, x, y, lr = inputs(0)
    other = wr.shared(str(path), combos, init, x, y, lr=lr * 2, steps=STEPS)
    assert other.shared is False


def test_a_truncated_or_foreign_file_is_recomputed_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "reference.npz"
    shared(path, seed=0)
    path.write_bytes(path.read_bytes()[:1000])
    assert shared(path, seed=0).shared is False
    path.write_text("not an npz file")
    assert shared(path, seed=0).shared is False
    np.savez(path, loss=np.zeros((STEPS + 1, 48)))  # arrays, but no key
    assert shared(path, seed=0).shared is False


def test_without_a_cache_file_it_is_computed_here() -> None:
    combos, init, x, y, lr = inputs(0)
    reference = wr.shared(None, combos, init, x, y, lr=lr, steps=STEPS)
    assert reference.shared is False and reference.curves.loss.shape == (STEPS + 1, len(combos))
