"""One table per concept: the registry in ``reference.py`` is what the schema, the docs, the
grids and the workers read; these tests fail when any of them drifts from it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlsetup.output import load_schema
from dlsetup.smoke import reference as ref
from dlsetup.smoke import worker_grid as core
from tests.support.proc import REPO


def test_the_schema_enums_are_the_registry() -> None:
    combination = load_schema("dlsetup.smoke")["$defs"]["combination"]["properties"]
    assert combination["activation"]["enum"] == list(ref.ACTIVATIONS)
    assert combination["loss"]["enum"] == list(ref.LOSSES)


def test_the_docs_tables_are_made_from_the_registry() -> None:
    docs = (REPO / "docs" / "smoke.md").read_text()
    for table in ref.markdown_tables().split("\n\n"):
        assert table.strip() in docs, "docs/smoke.md: regenerate with reference.markdown_tables()"


def test_the_learning_rates_and_the_grid_come_from_the_registry() -> None:
    assert {lo.name: lo.learning_rate for lo in ref.LOSS_SPECS} == core.LEARNING_RATES
    combos = core.combinations()
    assert len(combos) == len(ref.ACTIVATION_SPECS) * len(ref.LOSS_SPECS)
    for i, (act, loss) in enumerate(combos):
        assert ref.combination_index(act, loss) == i


def test_each_entry_s_derivative_matches_its_value_by_central_differences() -> None:
    x = np.array([-3.0, -0.7, 0.4, 2.5])
    for a in ref.ACTIVATION_SPECS:
        numeric = (a.value(x + 1e-6, 0.25) - a.value(x - 1e-6, 0.25)) / 2e-6
        assert a.grad(x, 0.25) == pytest.approx(numeric, rel=1e-5, abs=1e-8), a.name
    f = np.array([-2.0, -0.3, 0.45, 1.7])
    for y in (-1.0, 1.0):
        for lo in ref.LOSS_SPECS:
            numeric = (lo.value(f + 1e-6, y) - lo.value(f - 1e-6, y)) / 2e-6
            assert lo.grad(f, y) == pytest.approx(numeric, rel=1e-5, abs=1e-8), lo.name


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        ref.activation("swish", np.zeros(1))
    with pytest.raises(ValueError, match="unknown loss 'huber'"):
        ref.training_loss("huber", np.zeros(1), np.ones(1))


def test_a_worker_table_that_lacks_a_registry_entry_is_refused() -> None:
    acts = {name: None for name in ref.ACTIVATIONS if name != "elu"}
    losses = {name: None for name in ref.LOSSES} | {"huber": None}
    with pytest.raises(ValueError, match=r"activation table .* missing \['elu'\]"):
        core.require_complete("torch", acts, {name: None for name in ref.LOSSES})
    with pytest.raises(ValueError, match=r"loss table .* unknown \['huber'\]"):
        core.require_complete("torch", {name: None for name in ref.ACTIVATIONS}, losses)


@pytest.mark.torch
def test_the_torch_worker_implements_every_registry_entry() -> None:
    import torch

    from dlsetup.smoke import torch_worker

    backend = torch_worker.TorchBackend(torch)
    assert list(backend.acts) == list(ref.ACTIVATIONS)
    assert list(backend.losses) == list(ref.LOSSES)


def test_the_benchmark_schema_and_the_smoke_schema_read_as_json() -> None:
    for name in ("dlsetup.smoke", "dlsetup.smoke-benchmark"):
        assert json.loads(json.dumps(load_schema(name)))["type"] == "object"
