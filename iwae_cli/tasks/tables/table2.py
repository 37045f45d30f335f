"""`iwae table2`: the paper's Table 2, switching objectives (MNIST, one stochastic layer).

Experiment 1 continues the VAE (k=1) with the IWAE objective (k=50), experiment 2 the IWAE (k=50) with the VAE
(k=1), each for the schedule's switch stages with the optimiser state kept (`iwae switch-objective`). Each of
`seeds` continues its own Table 1 runs; the claims are judged over test examples and over seeds, as Table 1's.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from iwae_cli.core.runtime import cpu_count
from iwae_cli.data.loading import ensure_files
from iwae_cli.reports.tables.outcome import check_complete
from iwae_cli.reports.tables.render import render_terminal, write_claims_file, write_table_files
from iwae_cli.reports.tables.results import CellKey, collect_runs, evaluated
from iwae_cli.reports.tables.table2 import TERMINAL_COLUMNS, experiment_claims, table2_markdown, table2_row
from iwae_cli.specs.tables import TableSpec
from iwae_cli.tasks.job import user_facing
from iwae_cli.tasks.switch import second_stage_dir
from iwae_cli.tasks.tables.publish import TABLE2_FILES, publish
from iwae_cli.tasks.tables.settings import checked_settings
from iwae_cli.tasks.tables.sweep import (
    Grid,
    job_overrides,
    profile_header,
    run_filter,
    run_parallel,
    run_sweep,
    tables_dir,
)

log = logging.getLogger(__name__)

# (experiment, first stage (objective, k), second stage (objective, k)), MNIST, one stochastic layer.
TABLE2_EXPERIMENTS = ((1, ("vae", 1), ("iwae", 50)), (2, ("iwae", 50), ("vae", 1)))


def switch_command(
    cfg: DictConfig, spec: TableSpec, parent: Path, first: tuple, second: tuple, threads: int
) -> list[str]:
    """`iwae switch-objective` of one experiment; the child inherits the parent's protocol and loss scale.
    Its trackers name its cell by both stages."""
    objective, k = second
    cell = f"mnist/L1-{first[0]}-k{first[1]} -> {objective}-k{k}"
    return [
        sys.executable,
        "-m",
        "iwae_cli",
        "switch-objective",
        f"run={parent}",
        f"model={objective}",
        f"k={k}",
        *job_overrides(cfg, spec, threads),
        *([f"++tags.cell='{cell}'"] if cfg.get("logger") else []),
    ]


def parent_runs(cfg: DictConfig, spec: TableSpec) -> dict[tuple[int, int], Path]:
    """(experiment, seed) -> the finished Table 1 run it starts from; missing ones are trained first (one sweep
    per first-stage cell, over the seeds it lacks)."""
    root = Path(cfg.output_root)
    wanted = {
        (exp, seed): CellKey("mnist", 1, first[0], first[1], seed)
        for exp, first, _ in TABLE2_EXPERIMENTS
        for seed in spec.seeds
    }

    def finished() -> dict[CellKey, Path]:  # trained and evaluated: a run trained without evaluate= is swept again
        found = collect_runs(root, run_filter(cfg))
        return {key: path for key, path in found.items() if evaluated(path)}

    done = finished()
    todo = [key for key in wanted.values() if key not in done]
    if todo:
        ensure_files("mnist", cfg.get("data_dir"), cfg.get("download", "auto"))
    for objective, k in dict.fromkeys((key.objective, key.k) for key in todo):
        seeds = [key.seed for key in todo if (key.objective, key.k) == (objective, k)]
        run_sweep(cfg, spec, Grid({"dataset": ["mnist"], "layers": [1], "k": [k], "model": [objective], "seed": seeds}))
    done = finished() if todo else done
    return {pair: done[key] for pair, key in wanted.items() if key in done}


def child_run(parent: Path, second: tuple) -> Path:
    """Where `iwae switch-objective` writes the second stage of `parent` (beside it; inside it where an older
    version wrote it there)."""
    return second_stage_dir(parent, f"{second[0]}-k{second[1]}")


@user_facing
def table2_task(cfg: DictConfig) -> str:
    """Table 2: check every setting, continue the MNIST 1-layer VAE (k=1) with IWAE (k=50) and vice versa, for
    every seed; replace table2.csv/.md. Exits 0 only when both experiments have their numbers for every seed."""
    spec = checked_settings(cfg, [("mnist", 1, *first) for _, first, _ in TABLE2_EXPERIMENTS])
    seeds = list(spec.seeds)
    ready = parent_runs(cfg, spec)
    todo = [
        (ready[(exp, seed)], first, second)
        for exp, first, second in TABLE2_EXPERIMENTS
        for seed in seeds
        if (exp, seed) in ready and not evaluated(child_run(ready[(exp, seed)], second))
    ]
    # at most one switch run per core, each with its share of the cores
    parallel = max(1, min(cpu_count(), len(todo)))
    commands = [
        switch_command(cfg, spec, parent, first, second, cpu_count() // parallel) for parent, first, second in todo
    ]
    if commands and any(code != 0 for code in run_parallel(commands, parallel)):
        log.warning("a switch-objective run failed; its row is marked in the table")
    rows, claims = [], []
    for exp, first, second in TABLE2_EXPERIMENTS:
        pairs = [(p, child_run(p, second)) for seed in seeds if (p := ready.get((exp, seed))) is not None]
        rows.append(table2_row(exp, first, second, pairs, len(seeds)))
        claims += experiment_claims(exp, first, second, pairs)
    df = pd.DataFrame(rows)
    out_dir = tables_dir(cfg)
    markdown = table2_markdown(df, claims, profile_header("Table 2", "table2", cfg))

    def write(folder: Path) -> None:
        write_table_files(folder, "table2", df, markdown)
        write_claims_file(folder / "table2_claims.csv", claims)

    publish(out_dir, TABLE2_FILES, "Table 2", df.status, write)
    print(render_terminal(df, claims, out_dir / "table2.csv", TERMINAL_COLUMNS))
    done = df.status == "done"
    check_complete("Table 2", int(done.sum()), len(df), str(out_dir / "table2.md"), list(df.status[~done]))
    return str(out_dir / "table2.csv")
