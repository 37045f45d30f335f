"""A run's identity (specs/identity.py): its name and fingerprint come from the typed settings that change the
trained model, every objective parameter included, and from nothing else."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from iwae_cli.specs.identity import schedule_label, shipped
from iwae_cli.specs.run import run_spec
from iwae_cli.specs.run_dirs import chosen_run_name

SMOKE = ("progress=false", "threads=1")
ODD_RATES = "schedule.learning_rates=[7.196856730011521e-4,1e-4]"  # the code's rounding changes the first


@pytest.fixture(autouse=True)
def no_leftover_hydra_config() -> Iterator[None]:
    yield
    HydraConfig.instance().cfg = None


def composed(*overrides: str) -> DictConfig:
    """`iwae train`'s config for `overrides`, as a job's run directory is resolved from it (hydra node kept)."""
    with initialize_config_module(config_module="iwae_cli.conf", version_base="1.3"):
        return compose("train", overrides=["schedule=smoke", "output_root=/nonexistent", *overrides],
                       return_hydra_config=True)


def identity_of(cfg: DictConfig) -> tuple[str, dict]:
    """The run's directory name and fingerprint."""
    name = chosen_run_name(cfg)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return name, run_spec(cfg, "(hint)").fingerprint


def test_every_objective_parameter_is_in_the_name_defaults_included() -> None:
    assert identity_of(composed("model=vr"))[0].startswith("mnist/L1-vr-a0.5-k5/")
    assert identity_of(composed("model=vr", "model.alpha=0.2"))[0].startswith("mnist/L1-vr-a0.2-k5/")
    assert identity_of(composed("model=miwae", "k=10"))[0].startswith("mnist/L1-miwae-g5-k10/")
    assert identity_of(composed("model=ciwae"))[0].startswith("mnist/L1-ciwae-b0.5-k5/")
    assert identity_of(composed("model=iwae"))[0] == "mnist/L1-iwae-k5/smoke-text-paper-sum-seed0"


@pytest.mark.parametrize(
    "change",
    [
        "optim.unused_key=1",  # a key the run does not read
        "protocol.unused_key=x",
        "schedule.switch_passes=[99]",  # Table 2's settings
        "schedule.switch_learning_rates=[1e-5]",
        "eval.k=7",  # evaluation
        "active_units.threshold=0.5",
        "threads=2",  # where it runs
        "compile=true",
        "checkpoint_minutes=1",
        "progress=true",
        "logger=tensorboard",
        "tags.note=x",
    ],
)
def test_what_does_not_change_the_model_does_not_change_the_identity(change: str) -> None:
    base = identity_of(composed())
    assert identity_of(composed("+" + change if "unused" in change or "tags" in change else change)) == base


def test_every_setting_of_the_model_gives_its_own_name_and_fingerprint() -> None:
    changes = [
        (), ("seed=1",), ("k=2",), ("model=vae",), ("model=vr",), ("model=vr", "model.alpha=0.25"),
        ("layers='2'",), ("arch.latent_units=[20]",), ("protocol=code",), ("protocol.holdout=true",),
        ("protocol.round_learning_rates=true", ODD_RATES), (ODD_RATES,), ("optim.beta1=0.5",), ("optim=original_code",),
        ("loss_reduction=mean",), ("schedule.passes=[2,1]",), ("schedule.batch_size=10",),
        ("schedule.train_examples=200",), ("schedule.learning_rates=[1e-3,1e-4]",), ("dataset=omniglot",),
        ("schedule.anneal=cosine",), ("schedule.warmup_passes=1",), ("schedule.anneal=cosine", "schedule.min_learning_rate=1e-5"),
        ("protocol.holdout=1000",),
    ]
    seen = [identity_of(composed(*change)) for change in changes]
    for (a, b) in itertools.combinations(range(len(changes)), 2):
        assert seen[a][0] != seen[b][0], (changes[a], changes[b], seen[a][0])
        assert seen[a][1] != seen[b][1], (changes[a], changes[b])


def test_a_changed_scalar_reads_as_itself_and_a_changed_list_as_a_digest() -> None:
    smoke = shipped("schedule", "smoke")
    assert schedule_label(OmegaConf.merge(smoke, {"batch_size": 10})) == "smoke-batch_size_10"
    digest = schedule_label(OmegaConf.merge(smoke, {"passes": [2, 1]}))
    assert digest.startswith("smoke-custom-") and len(digest) == len("smoke-custom-") + 8
    assert schedule_label(OmegaConf.merge(smoke, {"passes": [2, 1]})) == digest  # stable
    assert schedule_label(OmegaConf.merge(smoke, {"passes": [2, 2]})) != digest
    assert identity_of(composed("optim.beta1=0.5"))[0].endswith("-paper-beta1_0.5-sum-seed0")


@pytest.mark.parametrize("name", ["smoke", "quick", "paper4", "paper"])
def test_a_shipped_schedule_as_shipped_goes_by_its_name(name: str) -> None:
    assert schedule_label(shipped("schedule", name)) == name


def test_a_schedule_iwae_does_not_ship_names_itself() -> None:
    assert schedule_label(OmegaConf.create({"name": "mine", "passes": [2]})) == "mine"
    assert shipped("schedule", "../train") is None


def test_paper4_is_the_papers_first_four_stages_and_table2_in_proportion() -> None:
    paper, paper4 = shipped("schedule", "paper"), shipped("schedule", "paper4")
    assert list(paper4.passes) == list(paper.passes)[:4] == [1, 3, 9, 27]
    assert list(paper4.learning_rates) == list(paper.learning_rates)[:4]
    assert paper4.batch_size == paper.batch_size and paper4.train_examples is None
    # the paper's second stage is 2,187 passes after 3,280: 2/3 of the first, here 27 after 40
    assert list(paper4.switch_passes) == [round(sum(paper4.passes) * 2187 / sum(paper.passes))]
    assert list(paper4.switch_learning_rates) == list(paper.switch_learning_rates)


def test_a_custom_schedule_run_leaves_the_named_runs_directory_free(iwae_cli, output_root: Path) -> None:
    """A run of `schedule.passes=...` first, then the named schedule's run in the same root: both train, each in
    its own directory, and the tables' filter sees the named one only."""
    iwae_cli("train", "schedule=smoke", "schedule.passes=[2,1]", "k=2", *SMOKE)
    iwae_cli("train", "schedule=smoke", "k=2", *SMOKE)
    runs = sorted(p.parent.name for p in (output_root / "runs" / "mnist" / "L1-iwae-k2").glob("*/metrics.json"))
    custom = schedule_label(OmegaConf.merge(shipped("schedule", "smoke"), {"passes": [2, 1]}))
    assert runs == [f"{custom}-text-paper-sum-seed0", "smoke-text-paper-sum-seed0"]
    summary = OmegaConf.load(output_root / "runs/mnist/L1-iwae-k2" / runs[0] / "metrics.json")["run"]
    assert summary["schedule"] == custom
