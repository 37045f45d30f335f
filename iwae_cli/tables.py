"""Tables 1 and 2 of the paper, rebuilt from our runs with the paper's numbers beside ours, and its claims checked.

`iwae table1` launches every cell as one Hydra multirun of `iwae train ... evaluate=true` (joblib by default;
any Hydra launcher via `hydra/launcher=...`), then reads each run's metrics.json. Run directories are named from
the configuration, so re-running a table resumes interrupted runs and skips finished ones.
"""

from __future__ import annotations

import functools
import logging
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .atomic import atomic_write_text
from .datasets import ensure_files
from .errors import DataError
from .runs import find_runs, read_json, run_state
from .runtime import cpu_count
from .tasks import user_facing

log = logging.getLogger(__name__)

NOISE_Z = 2.0  # a difference counts only when it exceeds this many standard errors


# ---------------------------------------------------------------------------------------------- the paper


@functools.cache
def paper_results() -> pd.DataFrame:
    """The paper's Table 1 and Table 2 values (iwae_cli/paper_results.csv)."""
    with resources.files("iwae_cli").joinpath("paper_results.csv").open() as f:
        return pd.read_csv(f, comment="#", dtype={"units": str})


def paper_cell(dataset: str, layers: int, k: int, objective: str) -> tuple[float | None, str | None]:
    """The paper's (NLL, units) for a Table 1 cell, or (None, None)."""
    df = paper_results()
    row = df[
        (df.table == 1)
        & (df.dataset == dataset)
        & (df.layers == layers)
        & (df.k == k)
        & (df.objective == objective)
    ]
    return (float(row.nll.iloc[0]), str(row.units.iloc[0])) if len(row) else (None, None)


def total_units(label: str | None) -> int | None:
    """'16+5' -> 21."""
    return None if not label else sum(int(part) for part in str(label).split("+"))


# ---------------------------------------------------------------------------------------------- our runs


@dataclass(frozen=True)
class CellKey:
    dataset: str
    layers: int
    objective: str
    k: int
    seed: int


def collect_runs(
    output_root: Path, schedule: str, optim: str, parent: str | None = None
) -> dict[CellKey, Path]:
    """Run directories under output_root/runs trained with `schedule` and `optim`, keyed by their cell."""
    found = {}
    for path in find_runs(Path(output_root) / "runs"):
        run = read_json(path / "metrics.json").get("run", {})
        if run.get("schedule") == schedule and run.get("optim") == optim and run.get("parent") == parent:
            found[CellKey(run["dataset"], run["layers"], run["objective"], run["k"], run["seed"])] = path
    return found


def per_example_log_likelihoods(run_dir: Path) -> torch.Tensor | None:
    """The per-example test L_k values saved by eval-nll, or None."""
    path = run_dir / "log_likelihoods_test.pt"
    if not path.exists():
        return None
    return torch.load(path, weights_only=True)["log_likelihoods"]


def paired_nll_difference(a: list[Path], b: list[Path]) -> tuple[float, float] | None:
    """NLL(a) - NLL(b) over the same test examples, with its standard error (per-example values averaged over
    each side's seeds first). None when either side was not evaluated on the same examples."""
    values = []
    for runs in (a, b):
        lls = [per_example_log_likelihoods(r) for r in runs]
        if not lls or any(v is None for v in lls) or len({len(v) for v in lls}) != 1:
            return None
        values.append(torch.stack(lls).mean(0))
    if len(values[0]) != len(values[1]):
        return None
    diff = values[1] - values[0]  # -(L_a) - -(L_b)
    return float(diff.mean()), float(diff.std(unbiased=True) / math.sqrt(len(diff)))


def cell_summary(runs: list[Path]) -> dict[str, Any]:
    """NLL (mean over seeds), its standard error, units and training facts of one cell's runs."""
    metrics = [read_json(r / "metrics.json") for r in runs]
    nlls = [m["test_nll"] for m in metrics if "test_nll" in m]
    units = [m["active_units"]["label"] for m in metrics if "active_units" in m]
    summary: dict[str, Any] = {
        "seeds": "+".join(str(m["run"]["seed"]) for m in metrics),
        "passes": min((m.get("train", {}).get("passes_done", 0) for m in metrics), default=0),
        "train_seconds": sum(m.get("train", {}).get("seconds", 0.0) for m in metrics),
        "run_dir": ";".join(str(r) for r in runs),
    }
    if nlls:
        mean = sum(n["nll"] for n in nlls) / len(nlls)
        summary.update(
            nll=round(mean, 3),
            nll_se=round(math.sqrt(sum(n["standard_error"] ** 2 for n in nlls)) / len(nlls), 3),
            nll_seed_std=round(pd.Series([n["nll"] for n in nlls]).std(), 3) if len(nlls) > 1 else None,
            eval_k=nlls[0]["k"],
            eval_n=nlls[0]["n"],
        )
    if units:
        summary["units"] = units[0] if len(set(units)) == 1 else "/".join(units)
    return summary


# ---------------------------------------------------------------------------------------------- the sweep


def launcher_arguments(n_jobs: int) -> list[str]:
    """The launcher for the training sweep: the one given to the table command, else joblib sized to the cores."""
    hydra_cfg = HydraConfig.get()
    chosen = hydra_cfg.runtime.choices.get("hydra/launcher")
    forwarded = [o for o in hydra_cfg.overrides.hydra if o.startswith("hydra.launcher.")]
    if chosen in (None, "basic"):
        return ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}", *forwarded]
    return [f"hydra/launcher={chosen}", *forwarded]


def job_overrides(cfg: DictConfig, threads: int) -> list[str]:
    """What every job launched by a table command is told: evaluate as the profile says, quietly, with the
    table's paths and `threads` CPU threads."""
    examples = cfg.profile.eval_examples
    return [
        "evaluate=true",
        f"eval.k={cfg.profile.eval_k}",
        f"eval.examples={'null' if examples is None else examples}",
        "progress=false",
        f"threads={threads}",
        f"output_root={cfg.output_root}",
        "download=never",
        *([f"data_dir={cfg.data_dir}"] if cfg.get("data_dir") else []),
    ]


def run_sweep(cfg: DictConfig, grid: dict[str, list], n_cells: int) -> int:
    """Train and evaluate every cell of `grid` as one `iwae train -m` sweep in a subprocess; returns its exit code."""
    n_jobs = int(cfg.n_jobs) if cfg.get("n_jobs") else max(1, min(cpu_count(), n_cells))
    threads = max(1, cpu_count() // n_jobs)
    overrides = [f"{key}={','.join(str(v) for v in values)}" for key, values in grid.items()]
    overrides += [
        f"schedule={cfg.profile.schedule}",
        f"optim={cfg.optim}",
        *job_overrides(cfg, threads),
        *launcher_arguments(n_jobs),
        *cfg.get("train_overrides"),
    ]
    command = [sys.executable, "-m", "iwae_cli", "train", "-m", *overrides]
    log.info("launching %d training jobs: %s", n_cells, " ".join(command[2:]))
    return subprocess.run(command, check=False).returncode


def available_datasets(cfg: DictConfig) -> tuple[list[str], dict[str, str]]:
    """The datasets whose files are present (downloaded first where `download` allows), and why the others
    are not."""
    present, reasons = [], {}
    for name in cfg.datasets:
        try:
            ensure_files(name, cfg.get("data_dir"), cfg.get("download", "ask"))
            present.append(name)
        except DataError as e:
            reasons[name] = str(e)
    return present, reasons


# ---------------------------------------------------------------------------------------------- claims


def verdict(diff: float | None, se: float | None, expect_negative: bool) -> str:
    """holds / does not hold / inconclusive (within NOISE_Z standard errors) / not measured."""
    if diff is None:
        return "not measured"
    if se is not None and abs(diff) <= NOISE_Z * se:
        return f"inconclusive (|diff| <= {NOISE_Z:g} SE)"
    return "holds" if (diff < 0) == expect_negative else "does not hold"


def nll_claim(
    claim: str, case: str, a: list[Path], b: list[Path], difference_of: str, lower: bool = True
) -> dict[str, Any]:
    """A claim that NLL(a) is lower (or, lower=False, higher) than NLL(b), judged on the paired difference
    NLL(a) - NLL(b), which `difference_of` names for the reader."""
    paired = paired_nll_difference(a, b) if a and b else None
    diff, se = paired if paired else (None, None)
    return {
        "claim": claim,
        "case": case,
        "difference_of": difference_of,
        "difference": _round(diff),
        "se": _round(se),
        "verdict": verdict(diff, se, expect_negative=lower),
    }


def units_claim(
    claim: str, case: str, a: list[Path], b: list[Path], difference_of: str, more: bool
) -> dict[str, Any]:
    """A claim that a has more (more=True) or fewer active units than b; counts are exact, so no standard error."""
    ua = [_units(r) for r in a]
    ub = [_units(r) for r in b]
    diff = None if not a or not b or None in ua + ub else sum(ua) / len(ua) - sum(ub) / len(ub)
    if diff is None:
        result = "not measured"
    else:
        result = "holds" if (diff > 0 if more else diff < 0) else "does not hold"
    return {
        "claim": claim,
        "case": case,
        "difference_of": difference_of,
        "difference": _round(diff),
        "se": None,
        "verdict": result,
    }


def _units(run_dir: Path) -> int | None:
    return total_units(read_json(run_dir / "metrics.json").get("active_units", {}).get("label"))


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def table1_claims(
    cells: dict[tuple, list[Path]], datasets: list[str], layers: list[int]
) -> list[dict[str, Any]]:
    """The paper's Table 1 claims (end of PROTOCOL.md), one entry per case."""

    def runs(d, depth, o, k):
        return cells.get((d, depth, o, k), [])

    claims = []
    for d in datasets:
        for depth in layers:
            for k_small, k_big in ((1, 5), (5, 50)):
                claims.append(
                    nll_claim(
                        "IWAE NLL falls as k grows",
                        f"{d} L{depth}: k={k_big} vs k={k_small}",
                        runs(d, depth, "iwae", k_big),
                        runs(d, depth, "iwae", k_small),
                        f"NLL(k={k_big}) - NLL(k={k_small})",
                    )
                )
            for k in (5, 50):
                claims.append(
                    nll_claim(
                        "IWAE beats VAE at the same k > 1",
                        f"{d} L{depth} k={k}",
                        runs(d, depth, "iwae", k),
                        runs(d, depth, "vae", k),
                        "NLL(IWAE) - NLL(VAE)",
                    )
                )
            claims.append(
                units_claim(
                    "IWAE has more active units than VAE at k=50",
                    f"{d} L{depth}",
                    runs(d, depth, "iwae", 50),
                    runs(d, depth, "vae", 50),
                    "units(IWAE) - units(VAE)",
                    more=True,
                )
            )
        if 1 in layers and 2 in layers:
            for o in ("vae", "iwae"):
                for k in (1, 5, 50):
                    claims.append(
                        nll_claim(
                            "two stochastic layers beat one",
                            f"{d} {o} k={k}",
                            runs(d, 2, o, k),
                            runs(d, 1, o, k),
                            "NLL(2 layers) - NLL(1 layer)",
                        )
                    )
    return claims


def claims_text(claims: list[dict[str, Any]]) -> list[str]:
    """One line per claim with its tally, then one indented line per case with the figures."""
    lines = []
    for claim in dict.fromkeys(c["claim"] for c in claims):
        cases = [c for c in claims if c["claim"] == claim]
        tally = pd.Series([c["verdict"].split(" (")[0] for c in cases]).value_counts().to_dict()
        lines.append(f"- {claim}: " + ", ".join(f"{n} {v}" for v, n in tally.items()))
        for c in cases:
            figures = (
                ""
                if c["difference"] is None
                else f"{c['difference_of']} = {c['difference']:+.3f}"
                + (f" ± {c['se']:.3f} (SE)" if c["se"] is not None else "")
            )
            lines.append(f"    - {c['case']}: {c['verdict']}" + (f"; {figures}" if figures else ""))
    return lines


# ---------------------------------------------------------------------------------------------- output


def fmt(value: Any, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec) if isinstance(value, float | int) and spec else str(value)


def write_table_files(out_dir: Path, name: str, rows: pd.DataFrame, markdown: str) -> None:
    """table CSV (machine-readable) and Markdown (for people), each written atomically."""
    atomic_write_text(out_dir / f"{name}.csv", rows.to_csv(index=False))
    atomic_write_text(out_dir / f"{name}.md", markdown)


def table1_markdown(rows: pd.DataFrame, claims: list[dict], header: str) -> str:
    """The paper's layout: one line per (dataset, layers, k), VAE and IWAE side by side, ours / paper."""
    lines = [
        header,
        "",
        "| dataset | layers | k | VAE NLL ours | VAE NLL paper | VAE units ours / paper | "
        "IWAE NLL ours | IWAE NLL paper | IWAE units ours / paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []  # why cells are empty, each reason once
    for (d, depth, k), group in rows.groupby(["dataset", "layers", "k"], sort=False):
        cells = []
        for o in ("vae", "iwae"):
            r = group[group.objective == o]
            r = r.iloc[0].to_dict() if len(r) else {}
            if _missing(r.get("nll")):
                reason = str(r.get("status", "not run"))
                notes += [] if reason in notes else [reason]
                ours = f"– (note {notes.index(reason) + 1})"
            else:
                ours = f"{fmt(r.get('nll'))} ± {fmt(r.get('nll_se'))}"
            cells += [
                ours,
                fmt(r.get("paper_nll")),
                f"{fmt(r.get('units'), '')} / {fmt(r.get('paper_units'), '')}",
            ]
        lines.append(f"| {d} | {depth} | {k} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "NLL: test negative log-likelihood in nats (lower is better), ours ± its standard error over test",
        "examples. Units: active units per stochastic layer (A_u > 0.01).",
        *[f"Note {i}: {reason}" for i, reason in enumerate(notes, start=1)],
        "",
        "## The paper's claims",
        "",
    ]
    lines += claims_text(claims)
    return "\n".join(lines) + "\n"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def table_figures(out_dir: Path, rows: pd.DataFrame, run_dirs: list[Path]) -> None:
    """nll_vs_paper.png, learning_curves.png and samples.png next to the tables."""
    from .plots import plot_learning_curves, plot_nll_vs_paper, plot_sample_grids

    plot_nll_vs_paper(rows.to_dict("records"), out_dir / "nll_vs_paper.png")
    plot_learning_curves(run_dirs, out_dir / "learning_curves.png")
    plot_sample_grids(run_dirs, out_dir / "samples.png")


def profile_header(title: str, command: str, cfg: DictConfig) -> str:
    p = cfg.profile
    n = "the whole test set" if p.eval_examples is None else f"the first {p.eval_examples} test examples"
    return (
        f"# {title}\n\nProfile `{p.name}`: schedule `{p.schedule}`, optimiser `{cfg.optim}`, "
        f"test NLL with k={p.eval_k} on {n}. Generated by `iwae {command} profile={p.name}`."
    )


# ---------------------------------------------------------------------------------------------- commands


def train_grid(cfg: DictConfig) -> tuple[dict[str, str], Callable[[str, int, str, int], list[Path]]]:
    """Train and evaluate the grid datasets x depths x ks x objectives x seeds as one sweep (finished runs are
    skipped). Returns why datasets were left out, and a look-up (dataset, depth, objective, k) -> its runs."""
    present, skipped = available_datasets(cfg)
    depths, ks, objectives, seeds = (list(cfg[key]) for key in ("depths", "ks", "objectives", "seeds"))
    if present:
        grid = {"dataset": present, "layers": depths, "k": ks, "model": objectives, "seed": seeds}
        n_cells = len(present) * len(depths) * len(ks) * len(objectives) * len(seeds)
        if run_sweep(cfg, grid, n_cells) != 0:
            log.warning("some training jobs failed; their cells are marked in the table")
    found = collect_runs(Path(cfg.output_root), cfg.profile.schedule, cfg.optim)

    def runs_of(d: str, depth: int, o: str, k: int) -> list[Path]:
        return [found[key] for s in seeds if (key := CellKey(d, depth, o, k, s)) in found]

    return skipped, runs_of


@user_facing
def table1_task(cfg: DictConfig) -> str:
    """Train and evaluate every Table 1 cell (one Hydra multirun), then write table1.csv/.md and figures."""
    skipped, runs_of = train_grid(cfg)
    layers = list(cfg.depths)
    rows, cells = [], {}
    for d in cfg.datasets:
        for depth in layers:
            for k in cfg.ks:
                for o in cfg.objectives:
                    runs = runs_of(d, depth, o, k)
                    cells[(d, depth, o, k)] = [r for r in runs if run_state(r) == "done"]
                    rows.append(table1_row(d, depth, k, o, runs, skipped.get(d), cfg))
    df = pd.DataFrame(rows)
    claims = table1_claims(cells, list(cfg.datasets), layers)
    out_dir = Path(cfg.output_root) / "tables"
    write_table_files(
        out_dir, "table1", df, table1_markdown(df, claims, profile_header("Table 1", "table1", cfg))
    )
    atomic_write_text(out_dir / "table1_claims.csv", pd.DataFrame(claims).to_csv(index=False))
    table_figures(out_dir, df, [r for runs in cells.values() for r in runs])
    print(render_terminal(df, claims, out_dir / "table1.csv"))
    return str(out_dir / "table1.csv")


def table1_row(
    d: str, depth: int, k: int, o: str, runs: list[Path], skip_reason: str | None, cfg
) -> dict[str, Any]:
    paper_nll, paper_units = paper_cell(d, depth, k, o)
    row: dict[str, Any] = {
        "dataset": d,
        "layers": depth,
        "k": k,
        "objective": o,
        "schedule": cfg.profile.schedule,
    }
    done = [r for r in runs if _evaluated(r)]
    if done:
        row.update(cell_summary(done), status="done")
    else:
        row["status"] = unfinished_status(runs, skip_reason)
        row["run_dir"] = str(runs[0]) if runs else None
    row.update(paper_nll=paper_nll, paper_units=paper_units)
    if row.get("nll") is not None and paper_nll is not None:
        row["nll_minus_paper"] = round(row["nll"] - paper_nll, 3)
    return row


def unfinished_status(runs: list[Path], skip_reason: str | None) -> str:
    """Why a cell has no result: its data is missing, its run failed or was interrupted (with the message), or it
    was never launched."""
    if skip_reason:
        return f"not run: {skip_reason}"
    if runs:
        return f"{run_state(runs[0])}: {read_json(runs[0] / 'status.json').get('message') or 'not evaluated'}"
    return "not run"


def render_terminal(df: pd.DataFrame, claims: list[dict], path: Path) -> str:
    """What the table commands print: the table at a glance, the claims, and where the files are."""
    columns = [
        c
        for c in (
            "dataset",
            "layers",
            "k",
            "objective",
            "nll",
            "nll_se",
            "paper_nll",
            "nll_minus_paper",
            "units",
            "paper_units",
            "status",
        )
        if c in df.columns
    ]
    shown = df[columns].astype(object).where(df[columns].notna(), "")
    shown["status"] = shown["status"].astype(str).str.slice(0, 60)
    lines = [
        shown.to_string(index=False),
        "",
        "The paper's claims:",
        *claims_text(claims),
        "",
        f"written: {path} (and .md, figures beside it)",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- Table 2

# (experiment, first stage (objective, k), second stage (objective, k)), MNIST, one stochastic layer.
TABLE2_EXPERIMENTS = ((1, ("vae", 1), ("iwae", 50)), (2, ("iwae", 50), ("vae", 1)))


def run_parallel(commands: list[list[str]]) -> list[int]:
    """Run commands side by side (each inherits the terminal); their exit codes."""
    log.info(
        "running %d commands in parallel:\n  %s",
        len(commands),
        "\n  ".join(" ".join(c[2:]) for c in commands),
    )
    processes = [subprocess.Popen(c) for c in commands]
    return [p.wait() for p in processes]


def switch_command(cfg: DictConfig, parent: Path, objective: str, k: int, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "iwae_cli",
        "switch-objective",
        f"run={parent}",
        f"model={objective}",
        f"k={k}",
        *job_overrides(cfg, threads),
    ]


@user_facing
def table2_task(cfg: DictConfig) -> str:
    """Table 2: continue the MNIST 1-layer VAE (k=1) with IWAE (k=50) and vice versa; write table2.csv/.md."""
    seed = int(cfg.seed)
    root = Path(cfg.output_root)
    parents = {exp: CellKey("mnist", 1, first[0], first[1], seed) for exp, first, _ in TABLE2_EXPERIMENTS}
    found = collect_runs(root, cfg.profile.schedule, cfg.optim)
    todo = [key for key in parents.values() if key not in found or run_state(found[key]) != "done"]
    if todo:
        ensure_files("mnist", cfg.get("data_dir"), cfg.get("download", "ask"))
    for key in todo:  # the Table 1 runs Table 2 starts from, trained first when they do not exist
        run_sweep(
            cfg,
            {"dataset": ["mnist"], "layers": [1], "k": [key.k], "model": [key.objective], "seed": [seed]},
            1,
        )
    found = collect_runs(root, cfg.profile.schedule, cfg.optim)
    ready = {
        exp: found[key] for exp, key in parents.items() if key in found and run_state(found[key]) == "done"
    }
    threads = max(1, cpu_count() // max(1, len(ready)))
    commands = [
        switch_command(cfg, ready[exp], second[0], second[1], threads)
        for exp, _, second in TABLE2_EXPERIMENTS
        if exp in ready
    ]
    if commands and any(code != 0 for code in run_parallel(commands)):
        log.warning("a switch-objective run failed; its row is marked in the table")
    rows, claims = [], []
    for exp, first, second in TABLE2_EXPERIMENTS:
        parent = ready.get(exp)
        child = parent / f"switch-{second[0]}-k{second[1]}" if parent else None
        rows.append(table2_row(exp, first, second, parent, child))
        before = [parent] if parent else []
        after = [child] if child and _evaluated(child) else []
        lower = exp == 1  # VAE -> IWAE should lower NLL and raise units; IWAE -> VAE the opposite
        case = f"{first[0].upper()} k={first[1]} -> {second[0].upper()} k={second[1]}"
        claims.append(
            nll_claim(
                f"switching {'lowers' if lower else 'raises'} NLL",
                case,
                after,
                before,
                "NLL(after) - NLL(before)",
                lower=lower,
            )
        )
        claims.append(
            units_claim(
                f"switching {'raises' if lower else 'lowers'} active units",
                case,
                after,
                before,
                "units(after) - units(before)",
                more=lower,
            )
        )
    df = pd.DataFrame(rows)
    out_dir = root / "tables"
    write_table_files(
        out_dir, "table2", df, table2_markdown(df, claims, profile_header("Table 2", "table2", cfg))
    )
    print(render_terminal(df, claims, out_dir / "table2.csv"))
    return str(out_dir / "table2.csv")


def _evaluated(run_dir: Path) -> bool:
    return run_state(run_dir) == "done" and "test_nll" in read_json(run_dir / "metrics.json")


def table2_row(
    exp: int, first: tuple, second: tuple, parent: Path | None, child: Path | None
) -> dict[str, Any]:
    paper = paper_results()
    paper = paper[(paper.table == 2) & (paper.experiment == exp)].set_index("stage")
    row: dict[str, Any] = {"experiment": exp}
    for stage, (objective, k), run in (("first", first, parent), ("second", second, child)):
        summary = cell_summary([run]) if run is not None and _evaluated(run) else {}
        row.update(
            {
                f"{stage}_objective": objective,
                f"{stage}_k": k,
                f"{stage}_nll": summary.get("nll"),
                f"{stage}_nll_se": summary.get("nll_se"),
                f"{stage}_units": summary.get("units"),
                f"{stage}_paper_nll": float(paper.loc[stage, "nll"]),
                f"{stage}_paper_units": str(paper.loc[stage, "units"]),
                f"{stage}_passes": summary.get("passes"),
                f"{stage}_run_dir": str(run) if run else None,
            }
        )
    row["status"] = (
        "done"
        if row["second_nll"] is not None
        else unfinished_status([child] if child and child.exists() else [], None)
    )
    return row


def table2_markdown(df: pd.DataFrame, claims: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| experiment | first stage | NLL ours | NLL paper | units ours / paper | second stage | "
        "NLL ours | NLL paper | units ours / paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.to_dict("records"):
        cells = [str(r["experiment"])]
        for stage in ("first", "second"):
            nll = r.get(f"{stage}_nll")
            ours = (
                f"{fmt(nll)} ± {fmt(r.get(f'{stage}_nll_se'))}" if not _missing(nll) else f"– ({r['status']})"
            )
            cells += [
                f"{r[f'{stage}_objective'].upper()}, k={r[f'{stage}_k']}",
                ours,
                fmt(r[f"{stage}_paper_nll"]),
                f"{fmt(r.get(f'{stage}_units'), '')} / {r[f'{stage}_paper_units']}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## The paper's claims", "", *claims_text(claims)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- beyond the paper


def seed_level_difference(a: list[Path], b: list[Path]) -> tuple[float, float] | None:
    """Mean over seeds of NLL(a, seed) - NLL(b, seed), with its standard error over seeds (None for < 2 seeds)."""

    def nll_by_seed(runs):
        return {
            read_json(r / "metrics.json")["run"]["seed"]: read_json(r / "metrics.json")
            .get("test_nll", {})
            .get("nll")
            for r in runs
        }

    na, nb = nll_by_seed(a), nll_by_seed(b)
    diffs = [na[s] - nb[s] for s in na if s in nb and na[s] is not None and nb[s] is not None]
    if len(diffs) < 2:
        return None
    series = pd.Series(diffs)
    return float(series.mean()), float(series.std() / math.sqrt(len(diffs)))


@user_facing
def table_extra_task(cfg: DictConfig) -> str:
    """Newer objectives beside VAE and IWAE, several seeds per cell, each compared with the baseline objective."""
    skipped, runs_of = train_grid(cfg)
    rows = []
    for d in cfg.datasets:
        for depth in cfg.depths:
            for k in cfg.ks:
                launched = {o: runs_of(d, depth, o, k) for o in cfg.objectives}
                cell = {o: [r for r in runs if _evaluated(r)] for o, runs in launched.items()}
                for o in cfg.objectives:
                    status = unfinished_status(launched[o], skipped.get(d))
                    rows.append(extra_row(d, depth, k, o, cell, str(cfg.baseline), status))
    df = pd.DataFrame(rows)
    out_dir = Path(cfg.output_root) / "tables"
    write_table_files(
        out_dir,
        "table_extra",
        df,
        extra_markdown(
            df,
            profile_header("Beyond the paper: gradient estimators and tighter bounds", "table-extra", cfg),
            str(cfg.baseline),
        ),
    )
    table_figures(out_dir / "extra", df.assign(paper_nll=None), [Path(p) for p in _run_dirs(df)])
    columns = [
        "dataset",
        "layers",
        "k",
        "objective",
        "nll",
        "nll_seed_std",
        "units",
        "vs_baseline",
        "vs_baseline_se",
        "verdict",
    ]
    print(df[[c for c in columns if c in df.columns]].to_string(index=False))
    print(f"\nwritten: {out_dir / 'table_extra.csv'} (and .md)")
    return str(out_dir / "table_extra.csv")


def _run_dirs(df: pd.DataFrame) -> list[str]:
    return [p for cell in df.get("run_dir", pd.Series(dtype=str)).dropna() for p in str(cell).split(";") if p]


def extra_row(
    d: str, depth: int, k: int, o: str, cell: dict[str, list[Path]], baseline: str, unfinished: str
) -> dict[str, Any]:
    """One objective's cell, with its difference to the baseline: paired over test examples and over seeds.
    `unfinished` is the status shown when no run of the cell has been evaluated."""
    row: dict[str, Any] = {"dataset": d, "layers": depth, "k": k, "objective": o}
    runs = cell.get(o)
    if not runs:
        row["status"] = unfinished
        return row
    row.update(cell_summary(runs), status="done")
    if o != baseline and cell.get(baseline):
        paired = paired_nll_difference(runs, cell[baseline])
        by_seed = seed_level_difference(runs, cell[baseline])
        if paired:
            row["vs_baseline"], row["vs_baseline_se"] = round(paired[0], 3), round(paired[1], 3)
        if by_seed:
            row["vs_baseline_seed_se"] = round(by_seed[1], 3)
        noise = max(row.get("vs_baseline_se") or 0.0, row.get("vs_baseline_seed_se") or 0.0)
        if paired:
            row["verdict"] = (
                "within noise"
                if abs(paired[0]) <= NOISE_Z * noise
                else "better than " + baseline
                if paired[0] < 0
                else "worse than " + baseline
            )
    return row


def extra_markdown(df: pd.DataFrame, header: str, baseline: str) -> str:
    lines = [
        header,
        "",
        f"| dataset | layers | k | objective | test NLL (mean over seeds) | seed std | units | "
        f"NLL - {baseline} | SE (examples) | SE (seeds) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.to_dict("records"):
        lines.append(
            "| "
            + " | ".join(
                [
                    r["dataset"],
                    str(r["layers"]),
                    str(r["k"]),
                    r["objective"],
                    fmt(r.get("nll")) if not _missing(r.get("nll")) else f"– ({r.get('status')})",
                    fmt(r.get("nll_seed_std")),
                    fmt(r.get("units"), ""),
                    fmt(r.get("vs_baseline"), "+.2f"),
                    fmt(r.get("vs_baseline_se")),
                    fmt(r.get("vs_baseline_seed_se")),
                    fmt(r.get("verdict"), ""),
                ]
            )
            + " |"
        )
    lines += [
        "",
        f"A difference counts as larger than its noise when it exceeds {NOISE_Z:g} standard errors, both over "
        "test examples (paired, same binarised test set) and over seeds (paired by seed).",
    ]
    return "\n".join(lines) + "\n"
