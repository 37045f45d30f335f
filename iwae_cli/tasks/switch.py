"""`iwae switch-objective`: continue a finished run with another objective and k for its schedule's switch
stages (the paper's Table 2), keeping its model and optimiser state.

The second stage is the first run's settings plus what this command says. The settings that make the trained
model (identity.IDENTITY_SOURCES) are the first run's, except the objective and k this command names and any the
user sets here (`+schedule.switch_passes=[5]`: this command's config holds none of them, so whatever of them it
holds the user gave). Every other setting (where it runs, how it trains and is evaluated, its trackers) is this
command's: `compile=true threads=2 logger=tensorboard` reach the second stage as they reach any run.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from iwae_cli.errors import ConfigError, RunError
from iwae_cli.pipeline.lifecycle import RunPlan
from iwae_cli.runs.checkpoint import CHECKPOINT_NAME
from iwae_cli.runs.records import CONFIG_NAME, run_state
from iwae_cli.runs.run_names import resolve_run_dir
from iwae_cli.specs.checks import flag
from iwae_cli.specs.identity import IDENTITY_SOURCES, objective_label
from iwae_cli.specs.run import objective_spec, run_spec
from iwae_cli.tasks.finish import evaluation_of
from iwae_cli.tasks.job import resume_command, user_facing
from iwae_cli.tasks.train import carry_out_runs

CHOSEN_HERE = ("model", "k")  # what switch-objective is for: the second stage's objective
THIS_COMMAND_ONLY = ("run", "same_objective")  # how the command chooses its work, no setting of the run


@user_facing
def switch_objective_task(cfg: DictConfig) -> str:
    """Train the second stage beside the first run (second_stage_dir), saying first which run it continues;
    returns the second stage's directory."""
    same_allowed = flag(cfg.get("same_objective", False), "same_objective")
    parent_dir = resolve_run_dir(cfg.run, cfg.output_root)
    if run_state(parent_dir) != "done":
        raise RunError(
            f"{parent_dir} has not finished its schedule; finish it first (re-run its iwae train command)"
        )
    stage = second_stage(cfg, parent_dir)
    spec = run_spec(stage, resume_command("switch-objective"))
    source, target = objective_of(OmegaConf.load(parent_dir / CONFIG_NAME)), objective_label(spec.objective)
    if source == target and not same_allowed:
        raise ConfigError(
            f"{parent_dir} was trained with {source} already: switching to the same objective and k only trains "
            "it for the switch stages (the control for the extra passes alone); give same_objective=true for "
            "that, or another model= or k="
        )
    run_dir = second_stage_dir(parent_dir, target)
    print(f"switch-objective: continuing {parent_dir} ({source}) with {target} in {run_dir}", flush=True)
    plan = RunPlan(spec, run_dir, evaluation_of(stage), parent_dir / CHECKPOINT_NAME, "switch_objective.log")
    carry_out_runs([plan], {}, alone=True)
    return str(run_dir)


def second_stage_dir(parent_dir: Path, label: str) -> Path:
    """Where the second stage of the run in `parent_dir` with the objective `label` (`iwae-k50`) lies: beside
    it, `<parent>-then-<label>`, so that switching a switched run never nests one run in another. A second stage
    that older versions made inside its first run (`<parent>/switch-<label>`) is read and resumed there."""
    beside = parent_dir.with_name(f"{parent_dir.name}-then-{label}")
    nested = parent_dir / f"switch-{label}"
    return nested if nested.is_dir() and not beside.exists() else beside


def objective_of(config: DictConfig) -> str:
    """The objective label (`vae-k1`) of a run's stored config."""
    return objective_label(objective_spec(config.model, int(config.k), str(config.get("loss_reduction", "sum"))))


def second_stage(cfg: DictConfig, parent_dir: Path) -> DictConfig:
    """The config of the run that continues the one in parent_dir (see the module's docstring), training for
    its schedule's switch stages."""
    stage = OmegaConf.load(parent_dir / CONFIG_NAME)
    with open_dict(stage):
        for key, value in cfg.items():
            if key in THIS_COMMAND_ONLY:
                continue
            given_here = key not in IDENTITY_SOURCES or key in CHOSEN_HERE
            both_nodes = OmegaConf.is_dict(value) and OmegaConf.is_dict(stage.get(key))
            if both_nodes and not given_here:
                refuse_unknown_leaves(stage[key], value, key)
            stage[key] = value if given_here or not both_nodes else OmegaConf.merge(stage[key], value)
        schedule = stage.schedule
        stage.schedule = {
            **OmegaConf.to_container(schedule),
            "name": f"{schedule.name}-switch",
            "passes": list(schedule.switch_passes),
            "learning_rates": list(schedule.switch_learning_rates),
        }
        stage.parent = run_name_of(parent_dir, Path(str(cfg.output_root)))
    return stage


def refuse_unknown_leaves(first: DictConfig, given: DictConfig, path: str) -> None:
    """ConfigError (one line) for a setting given here (`+schedule.batch_sise=3`) that the first run's node has
    not: merged into the stored config, it would be silently ignored."""
    for key, value in given.items():
        if key not in first:
            raise ConfigError(
                f"{path}.{key} is not a setting of the first run's {path}, whose settings are {keys_of(first)}; "
                "check its spelling"
            )
        if OmegaConf.is_dict(value) and OmegaConf.is_dict(first[key]):
            refuse_unknown_leaves(first[key], value, f"{path}.{key}")


def keys_of(node: DictConfig) -> str:
    """A node's keys, for a message listing what it accepts."""
    return ", ".join(str(key) for key in node)


def run_name_of(run_dir: Path, output_root: Path) -> str:
    """A run's name relative to <output_root>/runs (its whole path where it lies elsewhere): the identity of a
    run that continues it does not change when the output root moves."""
    runs = output_root.resolve() / "runs"
    return str(run_dir.relative_to(runs)) if run_dir.is_relative_to(runs) else str(run_dir)
