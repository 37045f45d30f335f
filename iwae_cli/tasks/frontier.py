"""`iwae frontier`: time to quality. Each cell is trained with each recipe as an ordinary `iwae train` run on all
but the last `holdout` training images, keeping its model at every pass mark (`snapshot_passes`); each mark is
then scored on held-out images, and the curves (validation NLL against training seconds) are written to
<output_root>/frontier/<name>/frontier.csv and .png. Each finished run's last model is scored once more on the
whole validation split (final_k, final_examples) into frontier_final.csv: the figures a recipe is chosen by.

The runs resume like any run: a stopped frontier run again trains only what is missing and scores only the
marks it has not scored (evaluation/snapshots.py). Runs train one per core with one thread each, as a table
trains its cells, but with the plain training step (compile=false) for every recipe alike: their seconds
compare with each other, and a step takes about 1.7 times what a table's compiled step takes (docs/frontier.md).
"""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hydra import compose
from hydra.errors import HydraException
from omegaconf import DictConfig, open_dict
from omegaconf.errors import OmegaConfBaseException
from tqdm.auto import tqdm

from iwae_cli.core.model import Architecture
from iwae_cli.core.runtime import cpu_count, progress_disabled
from iwae_cli.data.loading import ensure_files, load_split
from iwae_cli.errors import ConfigError, RunError, first_line
from iwae_cli.evaluation.snapshots import score_snapshots
from iwae_cli.reports.frontier import final_text, frontier_table, write_frontier
from iwae_cli.runs.records import run_state
from iwae_cli.specs.checks import progress_setting
from iwae_cli.specs.frontier import Cell, FrontierSpec, frontier_spec
from iwae_cli.specs.run import architecture, typed_parts
from iwae_cli.tasks.job import user_facing
from iwae_cli.tasks.tables.children import Children

log = logging.getLogger(__name__)


@user_facing
def frontier_task(cfg: DictConfig) -> None:
    spec = frontier_spec(cfg)
    ensure_files(spec.dataset, cfg.get("data_dir"), str(cfg.get("download", "auto")))
    runs = {(cell, recipe): train_overrides(cfg, spec, cell, recipe) for cell in spec.cells for recipe in spec.recipes}
    made = {key: run_of(key[1], overrides) for key, overrides in runs.items()}  # every recipe checked first
    train_all(cfg, spec, list(runs.values()))
    points, unfinished = score_runs(cfg, spec, made, final=False)
    finals = frontier_table(score_runs(cfg, spec, made, final=True)[0])
    out_dir = Path(cfg.output_root) / "frontier" / spec.name
    written = write_frontier(
        frontier_table(points), finals, out_dir, spec.holdout, f"{spec.dataset}, seed {spec.seed}"
    )
    print(final_text(finals))
    print(f"written: {written[0]} (and {', '.join(p.name for p in written[1:])})")
    if unfinished:
        raise RunError(f"{len(unfinished)} runs did not finish, so their lines stop early: {'; '.join(unfinished)}"
                       "; run the same command again to resume them")


def score_runs(
    cfg: DictConfig, spec: FrontierSpec, made: dict[tuple[Cell, str], tuple[Path, Architecture]], final: bool
) -> tuple[list[dict], list[str]]:
    """Each run's pass marks scored on the first valid_examples held-out images (final=True: a finished run's
    last model on final_examples of them, with final_k), and the runs that have not finished."""
    k, examples = (spec.final_k, spec.final_examples) if final else (spec.valid_k, spec.valid_examples)
    x_valid = load_split(spec.dataset, cfg.get("data_dir"), "never", "valid", examples, holdout=spec.holdout)
    points, unfinished = [], []
    what = f"scoring each run's last model (k={k}, {examples} images)" if final else "scoring pass marks"
    for (cell, recipe), (run_dir, arch) in tqdm(made.items(), desc=what, unit="run",
                                                 disable=progress_disabled(progress_setting(cfg))):
        if run_state(run_dir) != "done":
            unfinished.append(f"{cell.name} {recipe} ({run_state(run_dir)}: {run_dir})")
            if final:  # its last snapshot is not its final model: scored once the run finishes
                continue
        for row in score_snapshots(run_dir, arch, x_valid, k, spec.seed, progress=False, final=final):
            points.append({"cell": cell.name, "recipe": recipe, "passes": row["passes"],
                           "train_seconds": row["train_seconds"], "valid_nll": row["nll"],
                           "valid_se": row["standard_error"], "k": row["k"], "n": row["n"], "run": str(run_dir)})
    return points, unfinished


def train_overrides(cfg: DictConfig, spec: FrontierSpec, cell: Cell, recipe: str) -> list[str]:
    """The `iwae train` command line of one cell under one recipe."""
    marks = ",".join(str(m) for m in spec.marks)
    return [
        f"dataset={spec.dataset}", f"layers='{cell.layers}'", f"model={cell.model}", f"k={cell.k}",
        f"seed={spec.seed}", f"protocol={spec.protocol}", f"protocol.holdout={spec.holdout}",
        *spec.recipes[recipe],
        f"snapshot_passes=[{marks}]", f"output_root={cfg.output_root}", f"device={cfg.device}",
        *([f"data_dir={cfg.data_dir}"] if cfg.get("data_dir") else []),
    ]


def train_all(cfg: DictConfig, spec: FrontierSpec, runs: list[list[str]]) -> None:
    """Train (or resume) every run, `n_jobs` at a time with one thread each; a run that fails is reported by
    the scoring (its line stops where its marks stop)."""
    n_jobs = spec.n_jobs or max(1, min(cpu_count(), len(runs)))
    quiet = ["progress=false", "threads=1", "download=never", "compile=false"]
    commands = [[sys.executable, "-m", "iwae_cli", "train", *overrides, *quiet] for overrides in runs]
    bar = tqdm(total=len(commands), desc="training runs", unit="run",
               disable=progress_disabled(progress_setting(cfg)))
    with Children() as children, ThreadPoolExecutor(n_jobs) as pool, bar:
        for code in pool.map(children.run, commands):
            bar.update(1)
            if code != 0:
                log.warning("a frontier run exited with code %d; see its train.log", code)


def run_of(recipe: str, overrides: list[str]) -> tuple[Path, Architecture]:
    """The run directory and architecture that `iwae train <overrides>` trains; ConfigError naming the recipe
    where its overrides make no run."""
    try:
        composed = compose(config_name="train", overrides=overrides, return_hydra_config=True)
        run_dir = Path(composed.hydra.run.dir)
        with open_dict(composed):
            del composed["hydra"]
        typed_parts(composed)
    except (HydraException, OmegaConfBaseException, ConfigError) as e:
        raise ConfigError(f"recipes.{recipe} makes no run: {first_line(e)}") from None
    return run_dir, architecture(composed.arch, composed.dataset.name)
