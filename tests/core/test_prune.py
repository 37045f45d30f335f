"""Pruning inactive units (prune.py): exactly inactive units change no log weight, the kept weights are the
original's, and the pruned NLL through `iwae eval-nll prune_inactive=true` and the table commands' evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from iwae_cli.core.activity import active_masks, activity_entry, activity_statistics
from iwae_cli.core.estimators import estimate_nll
from iwae_cli.core.model import Architecture, IWAEModel, initialise
from iwae_cli.core.noise import binarize
from iwae_cli.core.prune import prune_inactive
from iwae_cli.data.loading import load_dataset, training_pixel_means
from iwae_cli.errors import RunError
from iwae_cli.evaluation.finished_run import evaluate_finished_run
from iwae_cli.runs.checkpoint import save_checkpoint
from iwae_cli.runs.records import write_status
from iwae_cli.specs.evaluation import eval_spec
from iwae_cli.specs.saved_run import load_run
from tests.helpers.tiny_models import binary_x, random_model

F64 = torch.float64
ARCHS = {
    "1-layer": Architecture((6,), ((8,),), ((8,),), x_dim=12),
    "2-layer": Architecture((5, 4), ((8, 7), (6,)), ((8,), (6, 5)), x_dim=12),
    "2-layer, no hidden above h1": Architecture((5, 4), ((8,), ()), ((8,), ()), x_dim=12),
    "2-layer, h2 emptied": Architecture((5, 4), ((8,), (6,)), ((8,), (6,)), x_dim=12),
}
INACTIVE = {
    "1-layer": [[1, 4]],
    "2-layer": [[0, 3], [2]],
    "2-layer, no hidden above h1": [[1], [0, 3]],
    "2-layer, h2 emptied": [[2], [0, 1, 2, 3]],
}


def input_linears(module) -> list[torch.nn.Linear]:
    """The linear layers reading a layer's input: the MLP's first, or the heads when there is no MLP."""
    if len(module.body):
        return [module.body[0]]
    return [m for name, m in module.named_children() if name != "body"]


@torch.no_grad()
def make_exactly_inactive(model: IWAEModel, inactive: list[list[int]]) -> None:
    """q(u | .) = N(0, 1) (zero mean and log-std rows), p(u | h_{l+1}) = N(0, 1) below the top (the prior is
    N(0, 1) at the top), and zero weights out of u: its log q and log p terms cancel, nothing else sees it."""
    n = model.n_layers
    for layer, units in enumerate(inactive):
        u = torch.tensor(units, dtype=torch.long)
        heads = [model.encoders[layer].mean, model.encoders[layer].log_std]
        if layer + 1 < n:
            heads += [model.decoders[layer + 1].mean, model.decoders[layer + 1].log_std]
        for head in heads:
            head.weight[u] = 0
            head.bias[u] = 0
        readers = [model.decoders[layer]] + ([model.encoders[layer + 1]] if layer + 1 < n else [])
        for linear in (lin for reader in readers for lin in input_linears(reader)):
            linear.weight[:, u] = 0


@pytest.mark.parametrize("name", list(ARCHS))
def test_pruning_exactly_inactive_units_leaves_every_log_weight_unchanged(name: str) -> None:
    arch, inactive = ARCHS[name], INACTIVE[name]
    model = random_model(arch, seed=3, scale=0.5)
    make_exactly_inactive(model, inactive)
    x = binary_x(9, 12)
    # A_u is exactly 0 for those units and only for them
    masks = active_masks(activity_statistics(model, x, torch.Generator().manual_seed(0)), threshold=0.0)
    expected = [
        [i not in units for i in range(u)] for units, u in zip(inactive, arch.latent_units, strict=True)
    ]
    assert [m.tolist() for m in masks] == expected
    before = {k: v.clone() for k, v in model.state_dict().items()}

    pruned = prune_inactive(model, masks)
    kept = tuple(u - len(units) for u, units in zip(arch.latent_units, inactive, strict=True))
    assert pruned.arch == Architecture(kept, arch.encoder_hidden, arch.decoder_hidden, arch.x_dim)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # pure
    assert next(pruned.parameters()).dtype == F64

    g = torch.Generator().manual_seed(4)
    noise = [torch.randn(s, generator=g, dtype=F64) for s in model.noise_shapes(10, len(x))]
    with torch.no_grad():
        full = model.log_weights(x, 10, noise)
        small = pruned.log_weights(x, 10, [eps[..., m] for eps, m in zip(noise, masks, strict=True)])
        # control: pruning an active unit as well does change the log weights
        more = [m.clone() for m in masks]
        more[0][more[0].nonzero()[0]] = False
        other = prune_inactive(model, more).log_weights(
            x, 10, [e[..., m] for e, m in zip(noise, more, strict=True)]
        )
    torch.testing.assert_close(small, full, rtol=1e-13, atol=1e-12)  # float64 rounding
    assert (other - full).abs().max() > 1e-3


def test_pruning_copies_the_kept_rows_and_columns() -> None:
    model = random_model(ARCHS["2-layer"], seed=1)
    m1, m2 = torch.tensor([True, False, True, True, False]), torch.tensor([False, True, True, False])
    pruned = prune_inactive(model, [m1, m2])
    old, new = model.state_dict(), pruned.state_dict()
    rows = {"encoders.0.mean": m1, "encoders.0.log_std": m1, "encoders.1.mean": m2, "encoders.1.log_std": m2,
            "decoders.1.mean": m1, "decoders.1.log_std": m1}  # fmt: skip
    cols = {"encoders.1.body.0": m1, "decoders.0.body.0": m1, "decoders.1.body.0": m2}
    for name, mask in rows.items():
        assert torch.equal(new[f"{name}.weight"], old[f"{name}.weight"][mask])
        assert torch.equal(new[f"{name}.bias"], old[f"{name}.bias"][mask])
    for name, mask in cols.items():
        assert torch.equal(new[f"{name}.weight"], old[f"{name}.weight"][:, mask])
        assert torch.equal(new[f"{name}.bias"], old[f"{name}.bias"])
    changed = {f"{n}.{kind}" for n in rows for kind in ("weight", "bias")} | {f"{n}.weight" for n in cols}
    assert changed < set(old) and all(torch.equal(new[k], old[k]) for k in set(old) - changed)
    assert new["encoders.0.mean.weight"].shape == (3, 7) and new["decoders.1.mean.weight"].shape == (3, 5)


@pytest.mark.parametrize(
    "masks",
    [
        [torch.ones(5, dtype=torch.bool)],
        [torch.ones(5, dtype=torch.bool), torch.ones(3, dtype=torch.bool)],
        [torch.ones(5), torch.ones(4)],
    ],
)
def test_prune_rejects_masks_that_do_not_fit(masks) -> None:
    with pytest.raises(RunError, match="one bool mask per layer of sizes \\[5, 4\\]"):
        prune_inactive(random_model(ARCHS["2-layer"]), masks)


# ---------------------------------------------------------------------------------------------- real MNIST

PAPER_1 = Architecture((50,), ((200, 200),), ((200, 200),))
QUIET = torch.arange(50) % 2 == 1  # the units made nearly inactive


@pytest.fixture(scope="module")
def mnist(mnist_data_dir):
    return load_dataset("mnist", mnist_data_dir, download="never")


@pytest.fixture(scope="module")
def collapsed_model(mnist) -> IWAEModel:
    """The paper's 1-layer model initialised on real MNIST, with every other unit nearly inactive, as posterior
    collapse leaves a unit: its mean barely depends on x, q(u | x) ~ N(0, 1), the decoder nearly ignores it."""
    model = IWAEModel(PAPER_1)
    initialise(model, training_pixel_means(mnist.train), seed=0)
    with torch.no_grad():
        encoder = model.encoders[0]
        encoder.mean.weight[QUIET] *= 0.01
        encoder.log_std.weight[QUIET] *= 0.01
        model.decoders[0].body[0].weight[:, QUIET] *= 0.01
    return model.eval()


def test_pruning_nearly_inactive_units_of_a_real_model_changes_the_nll_little(collapsed_model, mnist) -> None:
    g = torch.Generator().manual_seed(123)
    masks = active_masks(activity_statistics(collapsed_model, binarize(mnist.train[:500], g), g))
    assert torch.equal(masks[0], ~QUIET)  # exactly the quiet units are under the threshold
    pruned = prune_inactive(collapsed_model, masks)
    assert pruned.arch.latent_units == (25,)
    assert pruned.encoders[0].mean.weight.shape == (25, 200) and pruned.encoders[0].log_std.bias.shape == (
        25,
    )
    assert pruned.decoders[0].body[0].weight.shape == (200, 25)
    x = mnist.test[:100]
    full, _ = estimate_nll(collapsed_model, x, k=50, seed=123, progress=False)
    small, _ = estimate_nll(pruned, x, k=50, seed=123, progress=False)
    assert abs(small.nll - full.nll) < 0.5
    # control: removing 25 active units instead costs far more
    wrong, _ = estimate_nll(prune_inactive(collapsed_model, [QUIET]), x, k=50, seed=123, progress=False)
    assert abs(wrong.nll - full.nll) > 5 * abs(small.nll - full.nll) + 1.0


def write_run(run_dir: Path, model: IWAEModel) -> Path:
    """A finished run directory that load_run accepts: config.yaml (dataset and arch), checkpoint.pt and a done
    status (the evaluation commands refuse an unfinished run)."""
    arch = model.arch
    config = {"dataset": {"name": "mnist"}, "arch": {"latent_units": list(arch.latent_units),
              "encoder_hidden": [list(h) for h in arch.encoder_hidden],
              "decoder_hidden": [list(h) for h in arch.decoder_hidden]}}  # fmt: skip
    run_dir.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(config), run_dir / "config.yaml")
    save_checkpoint(run_dir, {"model": model.state_dict()})
    write_status(run_dir, "done")
    return run_dir


def test_eval_nll_prune_inactive_records_the_pruned_nll(iwae_cli, collapsed_model, tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", collapsed_model)
    args = ("eval-nll", f"run={run}", "k=20", "examples=50", "progress=false", "device=cpu")
    result = iwae_cli(*args, "prune_inactive=true")
    assert "test NLL with inactive units pruned (25 kept, A_u > 0.01) = " in result.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    entry = metrics["test_nll_pruned"]
    assert entry["counts"] == [25] and entry["label"] == "25" and entry["inclusive"] is False
    assert entry["k"] == 20 and entry["n"] == 50 and entry["threshold"] == 0.01
    assert metrics["active_units"]["counts"] == [25]  # computed, since the run had none
    assert "test_nll" not in metrics
    saved = torch.load(run / "log_likelihoods_test_pruned.pt")
    assert saved["log_likelihoods"].shape == (50,)
    assert -saved["log_likelihoods"].mean().item() == pytest.approx(entry["nll"], rel=1e-12)
    iwae_cli(*args)
    full = json.loads((run / "metrics.json").read_text())["test_nll"]
    assert abs(full["nll"] - entry["nll"]) < 1.0


def table_config(*overrides: str):
    with initialize_config_module("iwae_cli.conf", version_base="1.3"):
        base = ["eval.k=10", "eval.examples=30", "active_units.posterior_samples=20", "device=cpu"]
        return compose("eval_nll", overrides=[*base, "progress=false", *overrides])


def _evaluate_after_training(run_dir: Path, cfg) -> None:
    """What a table's cell does after training: evaluate the saved run as `eval` and `active_units` say."""
    saved = load_run(run_dir)
    evaluate_finished_run(run_dir, saved.model, saved.metrics, eval_spec(cfg, saved.config.dataset.name))


def test_table_evaluation_fills_in_only_what_is_missing(
    collapsed_model, tmp_path: Path, mnist_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run evaluated before active_units_expected and the pruned NLL existed gets just those added."""
    monkeypatch.setenv("IWAE_DATA_DIR", str(mnist_data_dir))
    run = write_run(tmp_path / "run", collapsed_model)
    old_au = activity_entry([torch.rand(50) * 0.02], 0.01, False, 500)  # an entry with its own (fake) A_u
    old_au = {k: v for k, v in old_au.items() if k not in ("inclusive", "rule")}  # as recorded before them
    old = {
        "test_nll": {"nll": 1.0, "standard_error": 0.1, "k": 10, "n": 30, "seed": 123},
        "active_units": old_au,
    }
    (run / "metrics.json").write_text(json.dumps(old))

    _evaluate_after_training(run, table_config("eval.prune_inactive=true"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_nll"] == old["test_nll"] and metrics["active_units"] == old_au  # kept as they were
    expected = metrics["active_units_expected"]
    assert expected["posterior_samples"] == 20 and expected["counts"] == [25]
    pruned = metrics["test_nll_pruned"]
    assert pruned["label"] == old_au["label"] and pruned["k"] == 10 and pruned["n"] == 30

    before = (run / "metrics.json").read_bytes()
    _evaluate_after_training(run, table_config("eval.prune_inactive=true"))
    assert (run / "metrics.json").read_bytes() == before  # nothing left to do

    _evaluate_after_training(run, table_config("eval.prune_inactive=true", "active_units.inclusive=true"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_nll"] == old["test_nll"]
    assert metrics["active_units"]["inclusive"] is True and metrics["active_units"]["counts"] == [25]
    assert metrics["active_units_expected"]["inclusive"] is True
    assert metrics["test_nll_pruned"]["inclusive"] is True and metrics["test_nll_pruned"]["label"] == "25"
