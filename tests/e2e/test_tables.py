"""Tables 1 and 2, table-extra, grad-snr and bench, driven through the real CLI on the smoke profile.

The Table 1 sweep (12 MNIST cells; OMNIGLOT is absent on these machines) runs once per module and the other
tests build on its runs, as a user's second command would.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module

from iwae_cli.reports.tables.outcome import NO_CELLS, SOME_CELLS_MISSING
from iwae_cli.tasks.tables.table1 import schedule_points
from tests.helpers.background import kill_leftovers
from tests.helpers.run_checks import background_iwae, schedule_name, schedule_overrides


def iwae(args: list[str], env: dict[str, str], timeout: int = 400) -> subprocess.CompletedProcess:
    """Run `python -m iwae_cli ARGS` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "iwae_cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory, mnist_data_dir: Path) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tables")
    return {**os.environ, "IWAE_DATA_DIR": str(mnist_data_dir), "IWAE_OUTPUT_ROOT": str(root / "outputs")}


@pytest.fixture(scope="module")
def table1(env) -> tuple[subprocess.CompletedProcess, Path]:
    # download=never: OMNIGLOT is not on these machines, and tests never touch the network
    result = iwae(["table1", "profile=smoke", "download=never"], env)
    return result, Path(env["IWAE_OUTPUT_ROOT"]) / "tables" / "smoke"


def test_table1_has_every_cell_with_ours_beside_the_papers(table1):
    result, out = table1
    # the table is written, but OMNIGLOT's cells are empty: exit SOME_CELLS_MISSING, one error line
    assert result.returncode == SOME_CELLS_MISSING, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "12 of 24 Table 1 cells have no numbers" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    df = pd.read_csv(out / "table1.csv")
    assert len(df) == 24
    mnist, omniglot = df[df.dataset == "mnist"], df[df.dataset == "omniglot"]
    assert mnist.status.str.startswith("done").all()
    assert mnist.nll.between(50, 600).all() and (mnist.nll_se > 0).all()
    assert (mnist.eval_k == 50).all() and (mnist.eval_n == 100).all()
    assert (mnist.passes == 2).all() and (mnist.schedule == "smoke").all()
    # the paper's numbers come from paper_results.csv, and the difference is ours minus theirs
    row = mnist[(mnist.layers == 2) & (mnist.k == 50) & (mnist.objective == "iwae")].iloc[0]
    assert row.paper_nll == pytest.approx(82.90) and row.paper_units == "26+7"
    assert row.nll_minus_paper == pytest.approx(row.nll - 82.90, abs=1e-3)
    assert len(str(row.units).split("+")) == 2
    # missing data leaves cells empty, with the reason
    assert omniglot.nll.isna().all()
    assert omniglot.status.str.contains("not run: OMNIGLOT not found").all()
    # IWAE k=1 is the VAE k=1 model (L_1 = L_VAE): trained once, reported in both rows
    k1 = mnist[mnist.k == 1]
    assert (k1.groupby("layers").nll.nunique() == 1).all() and (k1.groupby("layers").run_dir.nunique() == 1).all()
    assert (k1[k1.objective == "iwae"].status == "done (the VAE k=1 model)").all()
    assert "/L1-vae-k1/" in k1[(k1.layers == 1) & (k1.objective == "iwae")].run_dir.iloc[0]
    runs = Path(out.parents[1], "runs", "mnist")
    assert not any(runs.glob("L*-iwae-k1")) and len(list(runs.rglob("checkpoint.pt"))) == 10
    # the text protocol and the summed loss, with the pruned NLL and both active-unit estimates
    assert (mnist.protocol == "text").all()
    assert mnist.nll_pruned.map(math.isfinite).all()
    assert mnist[mnist.layers == 2].units_expected.str.count("[+]").eq(1).all()


def test_table1_writes_markdown_claims_and_figures(table1):
    result, out = table1
    markdown = (out / "table1.md").read_text()
    assert "| dataset | layers | k | VAE NLL ours | VAE NLL paper" in markdown
    assert "| mnist | 2 | 50 |" in markdown
    assert "IWAE k=1 is the VAE k=1 model" in markdown and "protocol `text`" in markdown
    assert "IWAE NLL falls as k grows" in markdown and "two stochastic layers beat one" in markdown
    claims = pd.read_csv(out / "table1_claims.csv")
    measured = claims[claims.case.str.startswith("mnist")]
    assert set(measured.verdict.str.split(" ").str[0]) <= {"holds", "does", "inconclusive"}
    assert (claims[claims.case.str.startswith("omniglot")].verdict == "not measured").all()
    nll_claims = measured[measured.se.notna()]
    assert (nll_claims.se > 0).all()
    # one seed: every verdict says that training noise is left out
    decided = nll_claims[~nll_claims.verdict.str.startswith("not measured")]
    assert decided.verdict.str.contains("one seed: training noise not measured").all()
    for name in ("nll_vs_paper.png", "learning_curves.png", "samples.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "The paper's claims:" in result.stdout


def test_rerunning_table1_trains_nothing_again(table1, env):
    runs = sorted(Path(env["IWAE_OUTPUT_ROOT"], "runs").rglob("checkpoint.pt"))
    before = {p: p.stat().st_mtime_ns for p in runs}
    result = iwae(["table1", "profile=smoke", "datasets=[mnist]"], env)
    assert result.returncode == 0, result.stderr[-2000:]  # every requested cell has its numbers
    assert {p: p.stat().st_mtime_ns for p in runs} == before
    assert len(pd.read_csv(table1[1] / "table1.csv")) == 12


def test_table1_draws_each_cell_on_every_schedule_in_its_root(table1, env):
    """A cell trained on a shorter schedule beside the table's runs: the NLL-vs-passes figure has a point per
    schedule, each its own runs' NLL, and none for the cells that schedule has no run of."""
    one_pass = {"passes": [1], "learning_rates": [1e-3]}
    short = ("schedule=smoke", *schedule_overrides(**one_pass), "evaluate=true", "eval.k=50", "eval.examples=100")
    trained = iwae(["train", "dataset=mnist", "layers=1", "model=vae", "k=1", *short, "progress=false"], env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    (table1[1] / "nll_vs_passes.png").unlink()
    result = iwae(["table1", "profile=smoke", "datasets=[mnist]"], env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (table1[1] / "nll_vs_passes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    root = env["IWAE_OUTPUT_ROOT"]
    with initialize_config_module(config_module="iwae_cli.conf", version_base="1.3"):
        cfg = compose("table1", overrides=["profile=smoke", "datasets=[mnist]", f"output_root={root}"])
    points = pd.DataFrame(schedule_points(cfg))
    label = schedule_name("smoke", **one_pass)
    assert sorted(points.schedule.unique()) == sorted(["smoke", label])
    assert len(points[points.schedule == "smoke"]) == 10  # every cell but IWAE k=1 (the VAE k=1 model), per depth
    only = points[points.schedule == label].iloc[0]
    assert len(points[points.schedule == label]) == 1 and (only.layers, only.objective, only.k) == (1, "vae", 1)
    run = Path(root, "runs", "mnist", "L1-vae-k1", f"{label}-text-paper-sum-seed0")
    nll = json.loads((run / "metrics.json").read_text())["test_nll"]["nll"]
    assert only.passes == 1 and only.nll == pytest.approx(nll, abs=1e-3)


def test_table1_with_lockstep_groups_gives_the_solo_numbers(table1, env, tmp_path):
    """group=true: the VAE and IWAE cells of one shape train as one job (group=auto, the module's run, does
    not group on CPU), with the same NLLs to float rounding."""
    grouped = {**env, "IWAE_OUTPUT_ROOT": str(tmp_path / "outputs")}
    args = ["table1", "profile=smoke", "datasets=[mnist]", "depths=[1]", "ks=[5]", "group=true"]
    result = iwae(args, grouped)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((tmp_path / "outputs" / "groups").glob("mnist/L1-k5/*/train.log"))) == 1
    assert not (Path(env["IWAE_OUTPUT_ROOT"]) / "groups").exists()
    ours, solo = (pd.read_csv(root / "table1.csv") for root in (tmp_path / "outputs" / "tables" / "smoke", table1[1]))
    key = ["dataset", "layers", "objective", "k"]
    merged = ours.merge(solo, on=key, suffixes=("_group", "_solo"))
    assert len(merged) == 2 and (merged.status_group == "done").all()
    assert (merged.nll_group - merged.nll_solo).abs().max() < 0.01, merged[[*key, "nll_group", "nll_solo"]]


def test_table2_switches_objectives_from_the_table1_runs_of_every_seed(table1, env):
    """Seed 0's first stages are the Table 1 runs; seed 1's are trained first. Each seed's second stage
    continues its own first stage, and the claims are judged over examples and over the two seeds."""
    result = iwae(["table2", "profile=smoke", "seeds=[0,1]"], env)
    assert result.returncode == 0, result.stderr[-2000:]
    df = pd.read_csv(table1[1] / "table2.csv")
    assert list(df.experiment) == [1, 2]
    assert (df.status == "done").all() and (df.second_seeds == "0+1").all()
    first = df.iloc[0]
    assert (first.first_objective, first.first_k, first.second_objective, first.second_k) == ("vae", 1, "iwae", 50)
    assert first.second_paper_nll == pytest.approx(84.88)
    parents, children = (str(first[f"{stage}_run_dir"]).split(";") for stage in ("first", "second"))
    # each second stage beside its first, named after it
    assert [Path(c) for c in children] == [Path(f"{p}-then-iwae-k50") for p in parents]
    for parent, child in zip(parents, children, strict=True):
        metrics = json.loads((Path(child) / "metrics.json").read_text())
        # the parent named relative to the output root's runs/
        assert parent.endswith("/runs/" + metrics["run"]["parent"])
        assert metrics["run"]["schedule"] == "smoke-switch"
    # the second stage's NLL is the mean of its seeds', each seed's in the per-seed column
    per_seed = [float(v) for v in first.second_nll_per_seed.split("/")]
    assert first.second_nll == pytest.approx(sum(per_seed) / 2, abs=0.01)
    claims = (table1[1] / "table2.md").read_text()
    assert "switching lowers NLL" in claims and "switching raises NLL" in claims
    assert "(SE seeds, 2 seeds)" in claims
    # the claims as a CSV too, as table1's: one row per claim and experiment, each with a verdict
    rows = pd.read_csv(table1[1] / "table2_claims.csv")
    assert len(rows) == 4 and set(rows.verdict.str.split(" ").str[0]) <= {"holds", "does", "inconclusive"}
    assert rows.claim.str.contains("switching").all()


def test_table2_refuses_a_seed_that_is_not_a_list(env):
    result = iwae(["table2", "profile=smoke", "seeds=3"], env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: seeds must be a list of distinct whole numbers >= 0, for example seeds=[0,1,2], got seeds=3"
    )


def test_failed_jobs_are_marked_and_the_rest_is_built(env, tmp_path):
    # the IWAE cell's run directory holds a file that is no checkpoint: that job fails, the VAE job finishes
    root = tmp_path / "outputs"
    broken = root / "runs" / "mnist" / "L1-iwae-k5" / "smoke-text-paper-sum-seed0"
    broken.mkdir(parents=True)
    (broken / "checkpoint.pt").write_bytes(b"not a checkpoint")
    args = ["table1", "profile=smoke", "datasets=[mnist]", "depths=[1]", "ks=[5]", f"output_root={root}"]
    result = iwae(args, env)
    assert result.returncode == SOME_CELLS_MISSING, result.stderr[-2000:]
    assert "1 of 2 Table 1 cells have no numbers" in result.stderr
    df = pd.read_csv(root / "tables" / "smoke" / "table1.csv").set_index("objective")
    assert df.loc["vae", "status"] == "done"
    assert math.isnan(df.loc["iwae", "nll"]) and not df.loc["iwae", "status"].startswith("done")


def test_table_extra_compares_with_iwae_over_seeds(env):
    args = ["table-extra", "profile=smoke", "ks=[4]", "objectives=[iwae,dreg]", "seeds=[0,1]"]
    result = iwae(args, env)
    assert result.returncode == 0, result.stderr[-2000:]
    df = pd.read_csv(Path(env["IWAE_OUTPUT_ROOT"]) / "tables" / "smoke" / "table_extra.csv").set_index("objective")
    assert (df.status == "done").all() and df.loc["dreg", "seeds"] == "0+1"
    assert math.isfinite(df.loc["dreg", "vs_baseline"]) and df.loc["dreg", "vs_baseline_se"] > 0
    assert df.loc["dreg", "vs_baseline_seed_se"] >= 0
    assert df.loc["dreg", "verdict"] in ("within noise", "better than iwae", "worse than iwae")
    # each seed's own NLL and units, in seed order, read back from its run
    for objective in ("iwae", "dreg"):
        runs = [Path(p) for p in df.loc[objective, "run_dir"].split(";")]
        metrics = [json.loads((r / "metrics.json").read_text()) for r in runs]
        assert [m["run"]["seed"] for m in metrics] == [0, 1]
        assert df.loc[objective, "nll_per_seed"] == "/".join(f"{m['test_nll']['nll']:.2f}" for m in metrics)
        assert df.loc[objective, "units"] == "/".join(m["active_units"]["label"] for m in metrics)
    markdown = (Path(env["IWAE_OUTPUT_ROOT"]) / "tables" / "smoke" / "table_extra.md").read_text()
    assert f"| {df.loc['dreg', 'nll_per_seed']} |" in markdown


def test_grad_snr_writes_csv_and_plot(table1, env):
    run = Path(env["IWAE_OUTPUT_ROOT"]) / "runs" / "mnist" / "L1-iwae-k5" / "smoke-text-paper-sum-seed0"
    result = iwae(["grad-snr", f"run={run}", "ks=[1,8]", "draws=8", "objectives=[iwae,dreg]"], env)
    assert result.returncode == 0, result.stderr[-2000:]
    df = pd.read_csv(run / "grad_snr.csv")
    assert len(df) == 8 and set(df.part) == {"encoder", "decoder"}
    assert (df.snr_mean > 0).all() and df.snr_mean.map(math.isfinite).all()
    assert (run / "grad_snr.png").exists()


def test_bench_prints_and_writes_fractions(env):
    args = ["bench", "depths=[1]", "ks=[1]", "eval_k=100", "eval_examples=4", "min_seconds=0.05", "group_sizes=[2]"]
    result = iwae(args, env)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((Path(env["IWAE_OUTPUT_ROOT"]) / "bench" / "bench.json").read_text())
    results = report["devices"]["cpu"]["results"]
    # torch.compile's CPU backend needs a C++ compiler; without one bench times the plain step only
    compiler = any(shutil.which(c) for c in ("g++", "c++", "clang++"))
    compiled = ["train compiled"] if compiler else []
    assert [r["what"] for r in results] == ["train", *compiled, "train group x2", "eval k=100"]
    # structure and finiteness only: speeds are the benchmark's business, never a test's
    assert all(math.isfinite(r[key]) and r[key] > 0 for r in results for key in ("fraction", "gflops", "step_ms"))
    assert "fraction" in result.stdout
    # one depth and one k are not enough to project the tables: said, not guessed
    assert set(report["devices"]["cpu"]["paper_schedule_projection"].values()) == {None}
    assert "not timed" in result.stdout


def test_a_table_with_no_data_exits_no_cells(env, tmp_path):
    root = tmp_path / "outputs"
    result = iwae(["table1", "profile=smoke", "datasets=[omniglot]", "download=never", f"output_root={root}"], env)
    assert result.returncode == NO_CELLS, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    # no earlier table to keep: this one is written, with each cell's reason
    df = pd.read_csv(root / "tables" / "smoke" / "table1.csv")
    assert df.status.str.startswith("not run: OMNIGLOT not found").all()


def sweep_group(table_pid: int) -> int:
    """The process group of the table command's training sweep (its one child, in a group of its own)."""
    children = Path(f"/proc/{table_pid}/task/{table_pid}/children").read_text().split()
    assert len(children) == 1, children
    pgid = os.getpgid(int(children[0]))
    assert pgid != os.getpgid(table_pid), "the sweep shares the table command's process group"
    return pgid


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_sigterm_to_the_table_command_alone_stops_every_run_it_started(env, iwae_script, tmp_path):
    """`kill PID` or a scheduler signals the table command only: the sweep it launched and the sweep's workers
    stop too (no run trains on orphaned), each run keeps a checkpoint, and one line says how to resume."""
    root = tmp_path / "outputs"
    slow = "train_overrides=['schedule.train_examples=20000','checkpoint_minutes=0.005']"
    args = ("table1", "profile=smoke", "datasets=[mnist]", "depths=[1]", "ks=[50]", slow, f"output_root={root}")
    process = background_iwae(iwae_script, args, env, tmp_path / "logs")
    runs, sweep = root / "runs" / "mnist", None
    try:
        process.wait_for(lambda: len(list(runs.glob("*/*/checkpoint.pt"))) == 2, "both runs' first checkpoints")
        sweep = sweep_group(process.pid)
        process.popen.send_signal(signal.SIGTERM)
        assert process.wait() == 128 + signal.SIGTERM
        errors = [line for line in process.stderr.splitlines() if line.startswith("error: ")]
        assert errors == [
            "error: stopped by SIGTERM: the runs it started checkpointed and stopped; run the same command again "
            "to resume them (finished cells are kept)"
        ], process.stderr[-3000:]
        assert "Traceback" not in process.stderr
        deadline = time.monotonic() + 60
        while not group_gone(sweep):
            assert time.monotonic() < deadline, "the sweep's processes train on after the table command stopped"
            time.sleep(0.2)
        assert all(json.loads((r / "status.json").read_text())["state"] != "done" for r in runs.glob("*/*"))
    finally:
        kill_leftovers()
        if sweep is not None and not group_gone(sweep):
            os.killpg(sweep, signal.SIGKILL)
