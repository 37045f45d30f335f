"""The tables' own logic without the CLI: verdicts and claims over seeds, paired NLL differences, the paper's
numbers and which cells a table trains (the commands themselves are tested in tests/e2e/test_tables.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from iwae_cli.reports.tables.claims import nll_claim, table1_claims, units_claim, verdict
from iwae_cli.reports.tables.paper import paper_cell, paper_results, total_units
from iwae_cli.reports.tables.results import paired_nll_difference, unfinished_status
from iwae_cli.runs.lock import hold_run_dir
from iwae_cli.runs.records import write_status
from iwae_cli.tasks.tables.sweep import training_grids


def test_verdicts_respect_noise():
    assert verdict(-3.0, 1.0, expect_negative=True) == "holds"
    assert verdict(3.0, 1.0, expect_negative=True) == "does not hold"
    assert verdict(-1.5, 1.0, expect_negative=True).startswith("inconclusive")
    assert verdict(None, None, expect_negative=True) == "not measured"
    # without a standard error the sign decides either way, and no difference is no gain
    assert verdict(2.0, None, expect_negative=False) == "holds"
    assert verdict(0.0, None, expect_negative=False) == "does not hold"
    assert total_units("16+5") == 21 and total_units(None) is None


def evaluated_run(tmp_path: Path, values: list[float]) -> Path:
    """A run directory holding only per-example test log-likelihoods, as eval-nll saves them."""
    path = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    path.mkdir()
    torch.save({"log_likelihoods": torch.tensor(values, dtype=torch.float64)}, path / "log_likelihoods_test.pt")
    return path


def test_nll_claims_are_judged_in_the_direction_they_state(tmp_path):
    worse = evaluated_run(tmp_path, [-90.0, -100.0, -110.0, -95.0])
    better = evaluated_run(tmp_path, [-88.0, -97.5, -108.0, -92.5])  # higher L_k = lower NLL on every example
    lowers = nll_claim("lowers", "case", [better], [worse], "NLL(better) - NLL(worse)", lower=True)
    one_seed = " (one seed: training noise not measured)"
    assert lowers["difference"] == pytest.approx(-2.25) and lowers["verdict"] == "holds" + one_seed
    assert nll_claim("raises", "case", [better], [worse], "", lower=False)["verdict"] == "does not hold" + one_seed
    assert nll_claim("raises", "case", [worse], [better], "", lower=False)["verdict"] == "holds" + one_seed
    assert nll_claim("lowers", "case", [], [worse], "")["verdict"] == "not measured"


def test_paired_difference_uses_the_same_examples(tmp_path):
    def run_with(values):
        return evaluated_run(tmp_path, values)

    a = run_with([-90.0, -100.0, -110.0])
    b = run_with([-91.0, -102.0, -111.0])
    diff, se = paired_nll_difference([a], [b])
    assert diff == pytest.approx(-4 / 3)  # NLL(a) - NLL(b) = mean(L_b - L_a)
    assert se == pytest.approx(torch.tensor([-1.0, -2.0, -1.0], dtype=torch.float64).std().item() / math.sqrt(3))
    assert paired_nll_difference([a], [run_with([-1.0, -2.0])]) is None


def test_paper_numbers_match_the_protocol():
    assert paper_cell("mnist", 1, 1, "vae") == (86.76, "19")
    assert paper_cell("omniglot", 2, 50, "iwae") == (103.38, "44+7")
    assert paper_cell("mnist", 3, 1, "vae") == (None, None)
    assert len(paper_results()) == 28


def test_the_k1_cells_are_trained_once_when_vae_and_iwae_coincide():
    grids = training_grids(["mnist"], [1, 2], [1, 5, 50], ["vae", "iwae"], [0])
    assert [g.values["k"] for g in grids] == [[1], [5, 50]]
    assert [g.values["model"] for g in grids] == [["vae"], ["vae", "iwae"]]
    assert sum(g.size for g in grids) == 10
    # without the VAE nothing is shared; without k=1 there is one grid
    assert [g.values["model"] for g in training_grids(["mnist"], [1], [1], ["iwae", "stl"], [0])] == [["iwae", "stl"]]
    assert len(training_grids(["mnist"], [1], [5], ["vae", "iwae"], [0])) == 1


def test_two_layers_against_one_counts_the_shared_k1_model_once(tmp_path):
    # table1 files the VAE k=1 runs under IWAE k=1 too: the claim must not judge that one model twice
    cells = {}
    for depth in (1, 2):
        for k in (1, 5, 50):
            for o in ("vae", "iwae"):
                run = evaluated_run(tmp_path, [-90.0 - depth - k - len(o)] * 4)
                cells[(depth, o, k)] = cells[(depth, "vae", 1)] if (o, k) == ("iwae", 1) else [run]
    claims = table1_claims({("mnist", *key): runs for key, runs in cells.items()}, ["mnist"], [1, 2])
    cases = [c["case"] for c in claims if c["claim"] == "two stochastic layers beat one"]
    assert cases == ["mnist k=1", "mnist vae k=5", "mnist vae k=50", "mnist iwae k=5", "mnist iwae k=50"]
    # a table of the IWAE alone fills only the IWAE k=1 cells: that case is still measured
    iwae_only = {("mnist", *key): runs for key, runs in cells.items() if key[1] == "iwae"}
    k1 = next(c for c in table1_claims(iwae_only, ["mnist"], [1, 2]) if c["case"] == "mnist k=1")
    assert k1["difference"] is not None


def seeded_run(tmp_path: Path, seed: int, values: list[float]) -> Path:
    """An evaluated run of one seed: per-example test L_k and its metrics.json."""
    path = evaluated_run(tmp_path, values)
    nll = -sum(values) / len(values)
    (path / "metrics.json").write_text(json.dumps({"run": {"seed": seed}, "test_nll": {"nll": nll}}))
    return path


def test_several_seeds_make_a_claim_account_for_training_noise(tmp_path):
    # a constant per-example gap (tiny SE over examples) that changes sign between seeds: training noise
    base = [-90.0, -100.0, -110.0, -95.0]
    shifts = {0: -1.0, 1: 1.2, 2: -0.8}
    a = [seeded_run(tmp_path, s, [v + shifts[s] for v in base]) for s in shifts]
    b = [seeded_run(tmp_path, s, [v + 0.001 * i for i, v in enumerate(base)]) for s in shifts]
    claim = nll_claim("lowers", "case", a, b, "NLL(a) - NLL(b)")
    assert claim["seeds"] == 3 and claim["seed_se"] > 0.5 and claim["se"] < 0.01
    assert claim["verdict"].startswith("inconclusive")
    # with one seed the same data would decide, and the verdict says what it leaves out
    one = nll_claim("lowers", "case", a[:1], b[:1], "NLL(a) - NLL(b)")
    assert one["verdict"] == "does not hold (one seed: training noise not measured)"
    # a gap that holds on every seed is decided with both standard errors
    c = [seeded_run(tmp_path, s, [v + 2.0 + 0.1 * s for v in base]) for s in shifts]
    assert nll_claim("lowers", "case", c, b, "")["verdict"] == "holds"


def counted_run(tmp_path: Path, seed: int, label: str) -> Path:
    """A run of one seed whose metrics.json has its active-unit count, as the evaluation writes it."""
    path = tmp_path / f"units{len(list(tmp_path.iterdir()))}"
    path.mkdir()
    (path / "metrics.json").write_text(json.dumps({"run": {"seed": seed}, "active_units": {"label": label}}))
    return path


def test_a_units_claim_weighs_the_seeds_against_each_other(tmp_path):
    # medium Table 2, IWAE k=50 -> VAE k=1: 25 -> 25, 26 -> 25, 25 -> 25 (one seed's single unit is noise)
    before = [counted_run(tmp_path, s, u) for s, u in enumerate(["25", "26", "25"])]
    after = [counted_run(tmp_path, s, "25") for s in range(3)]
    fewer = units_claim("lowers", "case", after, before, "", more=False)
    assert fewer["difference"] == pytest.approx(-1 / 3, abs=1e-3) and fewer["seeds"] == 3
    assert fewer["seed_se"] == pytest.approx(1 / 3, abs=1e-3) and fewer["verdict"].startswith("inconclusive")
    # a gain on every seed holds; no change on any seed does not hold (not inconclusive: nothing varies)
    more = [counted_run(tmp_path, s, u) for s, u in enumerate(["30", "30", "31"])]
    assert units_claim("raises", "case", more, after, "", more=True)["verdict"] == "holds"
    assert units_claim("raises", "case", after, after, "", more=True)["verdict"] == "does not hold"
    # the counts are paired by seed, and a 2-layer label counts both layers
    two = [counted_run(tmp_path, s, f"{90 + s}+9") for s in (2, 0, 1)]
    assert units_claim("raises", "case", two, after, "", more=True)["difference"] == pytest.approx(75.0)
    # one seed decides on its sign and says what it leaves out
    one = units_claim("lowers", "case", after[1:2], before[1:2], "", more=False)
    assert one["verdict"] == "holds (one seed: training noise not measured)"


def test_a_cell_whose_run_stopped_under_a_live_worker_reads_interrupted(tmp_path):
    # A sweep worker that stopped a run lives on to train the next job, so the pid in the run's 'running'
    # status is alive; only the free lock shows that nobody trains this run any more.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with hold_run_dir(run_dir):
        write_status(run_dir, "running")  # this test's process plays the worker
        assert unfinished_status([run_dir], None).startswith("running elsewhere")
    assert unfinished_status([run_dir], None) == "interrupted: not evaluated"
