"""`iwae table-extra`: newer objectives beside VAE and IWAE, several seeds per cell, each compared with a baseline
(the rows, their verdicts and the Markdown: iwae_cli.reports.tables.extra)."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from iwae_cli.reports.tables.extra import extra_markdown, extra_row, extra_terminal
from iwae_cli.reports.tables.outcome import check_complete
from iwae_cli.reports.tables.render import table_figures, write_table_files
from iwae_cli.reports.tables.results import evaluated, unfinished_status
from iwae_cli.tasks.job import user_facing
from iwae_cli.tasks.tables.publish import EXTRA_FILES, publish
from iwae_cli.tasks.tables.settings import checked_settings
from iwae_cli.tasks.tables.sweep import profile_header, tables_dir, train_grid


@user_facing
def table_extra_task(cfg: DictConfig) -> str:
    """Check every setting, train newer objectives beside VAE and IWAE, several seeds per cell, each compared
    with the baseline objective; replace the table and its figures together. Exits 0 only when every cell has
    all its seeds evaluated."""
    spec = checked_settings(cfg)
    skipped, runs_of = train_grid(cfg, spec)
    baseline = str(spec.baseline)
    rows = []
    for d, depth, k in product(spec.datasets, spec.depths, spec.ks):
        launched = {o: runs_of(d, depth, o, k) for o in spec.objectives}
        cell = {o: [r for r in runs if evaluated(r)] for o, runs in launched.items()}
        for o in spec.objectives:
            unevaluated = [r for r in launched[o] if r not in cell[o]]
            status = unfinished_status(unevaluated or launched[o], skipped.get(d))
            rows.append(extra_row(d, depth, k, o, cell, baseline, status, len(spec.seeds)))
    df = pd.DataFrame(rows)
    out_dir = tables_dir(cfg)
    title = "Beyond the paper: gradient estimators and tighter bounds"

    def write(folder: Path) -> None:
        markdown = extra_markdown(df, profile_header(title, "table-extra", cfg), baseline)
        write_table_files(folder, "table_extra", df, markdown)
        table_figures(folder / "extra", df.assign(paper_nll=None), [Path(p) for p in _run_dirs(df)])

    publish(out_dir, EXTRA_FILES, "table-extra", df.status, write)
    print(extra_terminal(df, out_dir / "table_extra.csv"))
    done = df.status == "done"
    check_complete("table-extra", int(done.sum()), len(df), str(out_dir / "table_extra.md"), list(df.status[~done]))
    return str(out_dir / "table_extra.csv")


def _run_dirs(df: pd.DataFrame) -> list[str]:
    return [p for cell in df.get("run_dir", pd.Series(dtype=str)).dropna() for p in str(cell).split(";") if p]
