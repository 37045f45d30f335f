"""Every figure iwae draws reads at a glance: drawn here from small made-up results and checked as rendered, no
two labels overlap, passes and counts sit on whole-number ticks, axes carry their units, and the title says
what was run (configuration, schedule, seeds, test images)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text

from iwae_cli.reports import evaluation_plots, frontier, plots

FRONTIER_OF_RECORD = Path(__file__).resolve().parents[2] / "docs" / "results" / "frontier" / "frontier.csv"
RUN = {"dataset": "mnist", "layers": 1, "objective": "iwae", "k": 50, "schedule": "smoke", "seed": 0}


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures the plotting functions hand to save_figure, kept open instead of written."""
    figures: list[Figure] = []
    for module in (plots, evaluation_plots, frontier):
        monkeypatch.setattr(module, "save_figure", lambda fig, path, **_: figures.append(fig) or path)
    yield figures
    for fig in figures:
        plt.close(fig)


def make_run(root: Path, **changes) -> Path:
    """A run directory as the figures read it: metrics.json's configuration, train_log.csv and samples.png."""
    run = {**RUN, **changes}
    run_dir = root / f"L{run['layers']}-{run['objective']}-k{run['k']}" / f"smoke-text-paper-sum-seed{run['seed']}"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps({"run": run}))
    pd.DataFrame(
        {"passes_done": [1, 2], "train_bound": [-210.0, -200.0], "valid_bound": [float("nan")] * 2}
    ).to_csv(run_dir / "train_log.csv", index=False)
    plt.imsave(run_dir / "samples.png", torch.rand(28, 28).numpy(), cmap="gray")
    return run_dir


def table_rows() -> list[dict]:
    """Table 1 rows of two depths, our NLLs far from the paper's (as after a short schedule)."""
    rows = []
    for layers, objective, k in itertools.product((1, 2), ("vae", "iwae"), (1, 5, 50)):
        rows.append({"dataset": "mnist", "layers": layers, "objective": objective, "k": k, "schedule": "smoke",
                     "seeds": "0,1", "eval_n": 100.0, "passes": 2, "nll": 180.0 + 10 * layers + k / 10,
                     "nll_se": 4.0, "paper_nll": 86.0 - layers - math.log(k)})
    return rows


def shown_texts(fig: Figure) -> list[Text]:
    """The texts a reader sees: titles, axis labels, legends, and the tick labels inside each axis's range."""
    fig.canvas.draw()
    tick_labels: set[int] = set()
    texts = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for ticks, locs in ((axis.get_major_ticks(), axis.get_majorticklocs()),
                                (axis.get_minor_ticks(), axis.get_minorticklocs())):
                for tick, loc in zip(ticks, locs, strict=False):
                    tick_labels.update((id(tick.label1), id(tick.label2)))
                    if low <= loc <= high and tick.label1.get_visible() and ax.axison:
                        texts.append(tick.label1)
    others = [t for t in fig.findobj(Text) if id(t) not in tick_labels]
    return [t for t in texts + others if t.get_visible() and t.get_text().strip()]


def assert_readable(fig: Figure, *in_title: str) -> None:
    texts = shown_texts(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer).expanded(0.98, 0.9)) for t in texts]
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"labels overlap: {a!r} and {b!r}"
    titles = " ".join([fig.get_suptitle()] + [ax.get_title() for ax in fig.axes])
    for words in in_title:
        assert words in titles, f"{words!r} not in the title: {titles!r}"
    for ax in fig.axes:
        if ax.axison and ax.has_data():
            assert ax.get_xlabel() and ax.get_ylabel(), f"an axis without its label in {ax.get_title()!r}"


def integer_ticks(axis) -> list[float]:
    low, high = sorted(axis.get_view_interval())
    shown = [loc for loc in axis.get_majorticklocs() if low <= loc <= high]
    assert shown and all(float(loc).is_integer() for loc in shown), shown
    return shown


def test_a_runs_learning_curve(tmp_path: Path, drawn: list[Figure]) -> None:
    run_dir = make_run(tmp_path)
    history = pd.read_csv(run_dir / "train_log.csv").to_dict("records")
    plots.plot_learning_curve(history, run_dir / "learning_curve.png", run_dir.name)
    (fig,) = drawn
    assert_readable(fig, "mnist L1 IWAE k=50", "schedule smoke", "seed 0", run_dir.name)
    (ax,) = fig.axes
    assert integer_ticks(ax.xaxis) == [1, 2]
    assert "passes" in ax.get_xlabel() and "nats" in ax.get_ylabel()


def test_ours_against_the_papers_nll(tmp_path: Path, drawn: list[Figure]) -> None:
    rows = table_rows()
    rows.append({**rows[0], "nll": float("nan")})  # a cell not evaluated yet is left out
    plots.plot_nll_vs_paper(rows, tmp_path / "nll_vs_paper.png")
    (fig,) = drawn
    assert_readable(fig, "mnist", "schedule smoke", "seeds 0,1", "100 test images")
    (ax,) = fig.axes
    assert "nats" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["L1 VAE k=1", "L1 VAE k=5"]


def test_nll_against_passes(tmp_path: Path, drawn: list[Figure]) -> None:
    rows = table_rows()
    points = [{**r, "passes": passes} for r in rows for passes in (2, 10, 40)]  # the shipped schedules
    plots.plot_nll_vs_passes(points, rows, tmp_path / "nll_vs_passes.png")
    (fig,) = drawn
    assert_readable(fig, "3,280 passes", "schedule smoke", "seeds 0,1")
    for ax in fig.axes:
        assert integer_ticks(ax.xaxis) == [2, 10, 40, 3280]
        assert "nats" in ax.get_ylabel()


def test_every_runs_learning_curves_and_samples(tmp_path: Path, drawn: list[Figure]) -> None:
    run_dirs = [make_run(tmp_path / str(seed), objective=o, k=k, layers=layers, seed=seed)
                for seed in (0, 1) for layers in (1, 2) for o, k in (("vae", 1), ("iwae", 5), ("iwae", 50))]
    plots.plot_learning_curves(run_dirs, tmp_path / "learning_curves.png")
    plots.plot_sample_grids(run_dirs, tmp_path / "samples.png")
    curves, samples = drawn
    assert_readable(curves, "12 runs", "schedule smoke", "seeds 0,1")
    for ax in curves.axes:
        integer_ticks(ax.xaxis)
        assert "passes" in ax.get_xlabel() and "nats" in ax.get_ylabel()
    assert_readable(samples, "100 samples", "schedule smoke", "seeds 0,1", "mnist L2 IWAE k=50")


def test_gradient_snr(tmp_path: Path, drawn: list[Figure]) -> None:
    run_dir = make_run(tmp_path)
    df = pd.DataFrame([{"objective": o, "k": k, "part": part, "snr_mean": 0.5 + k / 200 + (o == "dreg") / 4}
                       for o in ("iwae", "dreg") for k in (1, 3, 10, 30, 100) for part in ("encoder", "decoder")])
    evaluation_plots.plot_snr(df, run_dir / "grad_snr.png")
    (fig,) = drawn
    assert_readable(fig, "mnist L1 IWAE k=50, schedule smoke, seed 0")
    for ax in fig.axes:
        assert integer_ticks(ax.xaxis) == [1, 3, 10, 30, 100]
        assert all("10^" not in t.get_text() and "e-" not in t.get_text() for t in ax.get_yticklabels())


def test_active_units_histogram(tmp_path: Path, drawn: list[Figure]) -> None:
    run_dir = make_run(tmp_path, layers=2)
    stats = [torch.cat([torch.full((20,), 1e-5), torch.rand(80) / 10 + 0.02]), torch.rand(50) / 5 + 0.05]
    evaluation_plots.plot_activity_histogram(stats, 0.01, run_dir / "active_units.png")
    (fig,) = drawn
    assert_readable(fig, "mnist L2 IWAE k=50", "80 of 100 units active", "50 of 50 units active")
    for ax in fig.axes:
        integer_ticks(ax.yaxis)
        assert "units" in ax.get_ylabel()


def test_time_to_quality_frontier(tmp_path: Path, drawn: list[Figure]) -> None:
    """Drawn from the frontier of record, whose recipes end within a few seconds and nats of each other."""
    marks = pd.read_csv(FRONTIER_OF_RECORD)
    frontier.plot_frontier(marks, tmp_path / "frontier.png", 10_000, "mnist, seed 0")
    (fig,) = drawn
    assert_readable(fig, "mnist, seed 0", "k=1,000", "2,000 of 10,000", "L1-iwae-k50", "L1-vae-k1")
    for ax in fig.axes:
        assert "seconds" in ax.get_xlabel() and "nats" in ax.get_ylabel()
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "fast: 90 passes" in legend and "reference: 121 passes" in legend
