"""The evaluation commands' specs (iwae_cli.evaluation.spec, iwae_cli.evaluation.snr), built once from the
config: every value checked with a one-line error before a run or an image is read."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from iwae_cli.core.setting_names import SPLITS
from iwae_cli.data.loading import held_out_count
from iwae_cli.data.registry import get_dataset
from iwae_cli.errors import ConfigError
from iwae_cli.evaluation.snr import SnrSpec
from iwae_cli.evaluation.spec import ActivitySpec, DataSource, EvalSpec, NLLSpec
from iwae_cli.reports.evaluation_plots import plot_activity_histogram
from iwae_cli.specs.checks import flag, number, progress_setting, whole_number
from iwae_cli.specs.run import protocol


def data_source(dataset: str, cfg: DictConfig, holdout: bool | int = True) -> DataSource:
    """Where the command reads `dataset`'s images from (its data_dir and download settings), split as a run
    that held out `holdout` training images (run_holdout) was trained."""
    return DataSource(str(dataset), cfg.get("data_dir"), str(cfg.get("download", "auto")), holdout)


def run_holdout(config: DictConfig, dataset: str) -> int:
    """The training images a run (its resolved config) held out to validate on: protocol.holdout, as
    specs.run.data_spec reads it (0: none)."""
    return held_out_count(get_dataset(str(dataset)), protocol(config).get("holdout", True))


def refuse_split_without_images(split: str, holdout: int, where: str, key: str = "split") -> None:
    """`split=valid` (`key`) of a run trained without a validation holdout is refused: its validation images are
    training images it has seen (or none at all)."""
    if split == "valid" and not holdout:
        raise ConfigError(
            f"{key}=valid: {where} was trained without a validation holdout (protocol.holdout=false), so it has "
            "no validation images; use split=test, or train a run with one (iwae train protocol=code, or "
            "protocol.holdout=true)"
        )


def nll_spec(cfg: DictConfig, k: Any, split: Any, examples: Any) -> NLLSpec:
    """-L_k with the given k, split and examples, batches, chunks and seed from the `eval` node."""
    k = whole_number(k, "k")
    batch_size = whole_number(cfg.eval.batch_size, "eval.batch_size")
    chunk = whole_number(cfg.eval.chunk, "eval.chunk")
    seed = whole_number(cfg.eval.seed, "eval.seed", minimum=0)
    if split not in SPLITS:
        raise ConfigError(f"split={split} does not exist; use split=test, split=valid or split=train")
    examples = whole_number(examples, "examples", allow_null=True)
    return NLLSpec(k, str(split), examples, batch_size, chunk, seed, progress_setting(cfg))


def activity_spec(cfg: DictConfig, node: Any) -> ActivitySpec:
    """The active-unit rule and sample sizes of `node` (the `active_units` node, or the command's own keys),
    drawn from eval.seed, and the histogram the reports draw of them (active_units.png)."""
    return ActivitySpec(
        threshold=number(node.threshold, "threshold"),
        inclusive=flag(node.get("inclusive", False), "active_units.inclusive"),
        examples=whole_number(node.examples, "examples"),
        posterior_samples=whole_number(node.posterior_samples, "active_units.posterior_samples"),
        seed=whole_number(cfg.eval.seed, "eval.seed", minimum=0),
        histogram=plot_activity_histogram,
    )


def eval_spec(cfg: DictConfig, dataset: str) -> EvalSpec:
    """The evaluation of a finished run of `dataset` as `eval` and `active_units` describe it (a table's cell,
    evaluate=true)."""
    node = cfg.eval
    nll = nll_spec(cfg, node.k, node.split, node.examples)
    holdout = run_holdout(cfg, dataset)
    refuse_split_without_images(nll.split, holdout, "this run", "eval.split")
    return EvalSpec(
        data=data_source(dataset, cfg, holdout),
        nll=nll,
        activity=activity_spec(cfg, cfg.active_units),
        prune_inactive=flag(node.get("prune_inactive", False), "eval.prune_inactive"),
    )


def snr_spec(cfg: DictConfig) -> SnrSpec:
    """`iwae grad-snr`'s objectives, ks, draws, images and seed."""
    draws = whole_number(cfg.draws, "draws", minimum=2)
    ks = tuple(whole_number(k, "ks[...]") for k in cfg.ks)
    examples = whole_number(cfg.examples, "examples")
    seed = whole_number(cfg.seed, "seed", minimum=0)
    return SnrSpec(tuple(str(o) for o in cfg.objectives), ks, draws, examples, seed, progress_setting(cfg))
