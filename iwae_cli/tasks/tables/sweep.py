"""Training the cells a table needs: one `iwae train -m` sweep per grid, in a subprocess, through any launcher.

Run directories are named from the configuration, so a table command resumes interrupted runs and skips
finished ones. A cell whose VAE and IWAE models would be identical (k=1: L_1 = L_VAE, with the same seed,
schedule and optimiser) is trained once, as VAE, and read for both rows.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from iwae_cli.core.runtime import cpu_count
from iwae_cli.data.loading import ensure_files
from iwae_cli.errors import DataError
from iwae_cli.reports.tables.results import CellKey, RunFilter, collect_runs
from iwae_cli.specs.checks import seed_list
from iwae_cli.specs.group import groups_on, is_member_key
from iwae_cli.specs.profiles import evaluation_overrides, schedule_override
from iwae_cli.specs.tables import TableSpec
from iwae_cli.tasks.tables.children import Children

log = logging.getLogger(__name__)

# (objective, k) -> the cell trained in its place: L_1 = L_VAE makes these the same model
SHARED_CELLS = {("iwae", 1): ("vae", 1)}


def run_filter(cfg: DictConfig, parent: str | None = None) -> RunFilter:
    """Which runs the table command reads: its profile's schedule, its protocol, optimiser and loss scale."""
    return RunFilter(cfg.profile.schedule, cfg.protocol.name, cfg.optim.name, str(cfg.loss_reduction), parent)


def launcher_arguments(n_jobs: int) -> list[str]:
    """The launcher for the training sweep: the one given to the table command, else joblib sized to the cores."""
    hydra_cfg = HydraConfig.get()
    chosen = hydra_cfg.runtime.choices.get("hydra/launcher")
    forwarded = [o for o in hydra_cfg.overrides.hydra if o.startswith("hydra.launcher.")]
    if chosen in (None, "basic"):
        return ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}", *forwarded]
    return [f"hydra/launcher={chosen}", *forwarded]


def identity_overrides(cfg: DictConfig) -> list[str]:
    """What makes the table's runs the table's: its protocol, optimiser (when given) and loss scale."""
    return [
        f"protocol={cfg.protocol.name}",
        f"optim={cfg.optim.name}",
        f"loss_reduction={cfg.loss_reduction}",
    ]


def tracking_overrides(cfg: DictConfig) -> list[str]:
    """The table command's trackers and tags as it was given them (logger=..., logger.mlflow.tracking_uri=...,
    +tags.note=...), and the tag naming the table: each run then names its cell (iwae_cli.specs.tracking)."""
    if not cfg.get("logger"):
        return []
    hydra_cfg = HydraConfig.get()
    keys = ("logger", "tags")
    given = [o for o in hydra_cfg.overrides.task if o.lstrip("+~").split(".")[0].split("=")[0] in keys]
    return [*given, f"++tags.table={hydra_cfg.job.config_name.replace('_', '-')}"]


def job_overrides(cfg: DictConfig, spec: TableSpec, threads: int) -> list[str]:
    """What every job launched by a table command is told: evaluate as the table's profile says, quietly, with
    the table's paths, `threads` CPU threads and its trackers."""
    return [
        "evaluate=true",
        *evaluation_overrides(spec.profile, bool(cfg.get("prune_inactive", False))),
        "progress=false",
        f"device={cfg.device}",
        f"threads={threads}",
        f"output_root={cfg.output_root}",
        "download=never",  # the table command fetched what it needs before launching
        *([f"data_dir={cfg.data_dir}"] if cfg.get("data_dir") else []),
        *tracking_overrides(cfg),
    ]


@dataclass(frozen=True)
class Grid:
    """A cartesian product of sweep values: {"dataset": [...], "layers": [...], "k": [...], ...}."""

    values: dict[str, list]

    @property
    def size(self) -> int:
        n = 1
        for v in self.values.values():
            n *= len(v)
        return n


def training_grids(datasets: list, depths: list, ks: list, objectives: list, seeds: list) -> list[Grid]:
    """The sweeps that train every cell once: the k=1 cells without the ones SHARED_CELLS trains in their
    place, then every other k."""
    base = {"dataset": list(datasets), "layers": list(depths), "seed": list(seeds)}
    # the cells whose runs shared_cell answers with a twin's: the same rule the tables read them by
    skipped = {o for o in objectives if 1 in ks and shared_cell(o, 1, objectives) != (o, 1)}
    grids = []
    if skipped:
        at_one = [o for o in objectives if o not in skipped]
        grids.append(Grid({**base, "k": [1], "model": at_one}))
        ks = [k for k in ks if k != 1]
    if ks:
        grids.append(Grid({**base, "k": list(ks), "model": list(objectives)}))
    return grids


def job_count(cfg: DictConfig, spec: TableSpec, grid: Grid) -> int:
    """How many jobs the sweep of `grid` launches: one per cell, or with lockstep groups one per shape."""
    if not groups_on(spec.group, str(cfg.device)):
        return grid.size
    members = 1
    for key, values in grid.values.items():
        if is_member_key(key):
            members *= len(values)
    return grid.size // members


def cell_overrides(
    cfg: DictConfig, spec: TableSpec, values: dict[str, list], threads: int, launcher: list[str] | None = None
) -> list[str]:
    """The `iwae train` overrides of the cells `values` names (one value each: one cell; several: a sweep, run
    by `launcher`), trained as the table trains them; the table's train_overrides come last."""
    return [
        *(f"{key}={','.join(str(v) for v in vals)}" for key, vals in values.items()),
        schedule_override(spec.profile),
        f"group={spec.group}",
        *identity_overrides(cfg),
        *job_overrides(cfg, spec, threads),
        *(launcher or []),
        *spec.train_overrides,
    ]


def run_sweep(cfg: DictConfig, spec: TableSpec, grid: Grid) -> int:
    """Train and evaluate every cell of `grid` as one `iwae train -m` sweep in a subprocess (cells of one shape
    in lockstep groups where `group` says so); its exit code."""
    n_jobs = spec.n_jobs or max(1, min(cpu_count(), job_count(cfg, spec, grid)))
    threads = max(1, cpu_count() // n_jobs)
    overrides = cell_overrides(cfg, spec, grid.values, threads, launcher_arguments(n_jobs))
    command = [sys.executable, "-m", "iwae_cli", "train", "-m", *overrides]
    log.info("launching %d training jobs: %s", grid.size, " ".join(command[2:]))
    with Children() as children:
        return children.run(command)


def available_datasets(cfg: DictConfig, datasets: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """The datasets whose files are present (downloaded first where `download` allows), and why the others
    are not."""
    present, reasons = [], {}
    for name in datasets:
        try:
            ensure_files(name, cfg.get("data_dir"), cfg.get("download", "auto"))
            present.append(name)
        except DataError as e:
            reasons[name] = str(e)
    return present, reasons


RunsOf = Callable[[str, int, str, int], list[Path]]


def train_grid(cfg: DictConfig, spec: TableSpec) -> tuple[dict[str, str], RunsOf]:
    """Train and evaluate the grid datasets x depths x ks x objectives x seeds (finished runs are skipped).
    Returns why datasets were left out, and a look-up (dataset, depth, objective, k) -> its runs, which answers
    a cell of SHARED_CELLS with its twin's runs."""
    seeds, objectives = list(spec.seeds), list(spec.objectives)
    present, skipped = available_datasets(cfg, spec.datasets)
    if present:
        for grid in training_grids(present, list(spec.depths), list(spec.ks), objectives, seeds):
            if run_sweep(cfg, spec, grid) != 0:
                log.warning("some training jobs failed; their cells are marked in the table")
    found = collect_runs(Path(cfg.output_root), run_filter(cfg))

    def runs_of(d: str, depth: int, o: str, k: int) -> list[Path]:
        o, k = shared_cell(o, k, objectives)
        return [found[key] for s in seeds if (key := CellKey(d, depth, o, k, s)) in found]

    return skipped, runs_of


def shared_cell(objective: str, k: int, objectives: list[str]) -> tuple[str, int]:
    """The (objective, k) whose runs answer for this cell: its SHARED_CELLS twin where the table trains it."""
    twin = SHARED_CELLS.get((objective, k))
    return twin if twin is not None and twin[0] in objectives else (objective, k)


def run_parallel(commands: list[list[str]], at_once: int) -> list[int]:
    """Run commands side by side, at most `at_once` at a time (each inherits the terminal); their exit codes."""
    log.info(
        "running %d commands, %d at a time:\n  %s",
        len(commands),
        at_once,
        "\n  ".join(" ".join(c[2:]) for c in commands),
    )
    with Children() as children, ThreadPoolExecutor(max_workers=max(1, at_once)) as pool:
        return list(pool.map(children.run, commands))


def tables_dir(cfg: DictConfig) -> Path:
    """Where a table command writes its tables and figures: one folder per profile, so the tables of a quick and
    a medium run in one output root sit side by side."""
    return Path(cfg.output_root) / "tables" / str(cfg.profile.name)


def profile_header(title: str, command: str, cfg: DictConfig) -> str:
    """The first lines of a table's Markdown: the profile and settings it was made with, and its command."""
    p = cfg.profile
    n = "the whole test set" if p.eval_examples is None else f"the first {p.eval_examples} test examples"
    return (
        f"# {title}\n\nProfile `{p.name}`: schedule `{p.schedule}`, protocol `{cfg.protocol.name}`, optimiser "
        f"`{cfg.optim.name}`, loss "
        f"`{cfg.loss_reduction}` over the minibatch, test NLL with k={p.eval_k} on {n}, seeds "
        f"{seed_list(cfg.seeds)}. Generated by `iwae {command} profile={p.name}`."
    )
