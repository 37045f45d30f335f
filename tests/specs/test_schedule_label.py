"""A schedule's run-name label: a named schedule keeps its name; one changed on the command line is marked
custom (so its runs never take a named schedule's run directory or table cell); paper4 is the paper's start."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from iwae_cli.specs.schedule_label import schedule_label, shipped_schedule

SMOKE = ("progress=false", "threads=1")


@pytest.mark.parametrize("name", ["smoke", "quick", "paper4", "paper"])
def test_a_shipped_schedule_as_shipped_goes_by_its_name(name: str) -> None:
    assert schedule_label(OmegaConf.create(shipped_schedule(name))) == name


def test_a_changed_value_marks_the_schedule_custom_with_a_digest_of_its_values() -> None:
    quick = shipped_schedule("quick")
    forty = schedule_label(OmegaConf.create({**quick, "passes": [1, 3, 9, 27]}))
    assert forty.startswith("quick-custom-") and len(forty) == len("quick-custom-") + 8
    assert schedule_label(OmegaConf.create({**quick, "passes": [1, 3, 9, 27]})) == forty  # stable
    assert schedule_label(OmegaConf.create({**quick, "passes": [1, 3, 9, 28]})) != forty
    assert schedule_label(OmegaConf.create({**quick, "switch_passes": [8]})).startswith("quick-custom-")


def test_a_schedule_iwae_does_not_ship_names_itself() -> None:
    assert schedule_label(OmegaConf.create({"name": "mine", "passes": [2]})) == "mine"
    assert shipped_schedule("../train") is None


def test_paper4_is_the_papers_first_four_stages_and_table2_in_proportion() -> None:
    paper, paper4 = shipped_schedule("paper"), shipped_schedule("paper4")
    assert paper4["passes"] == paper["passes"][:4] == [1, 3, 9, 27]
    assert paper4["learning_rates"] == paper["learning_rates"][:4]
    assert paper4["batch_size"] == paper["batch_size"] and paper4["train_examples"] is None
    # the paper's second stage is 2,187 passes after 3,280: 2/3 of the first, here 27 after 40
    assert paper4["switch_passes"] == [round(sum(paper4["passes"]) * 2187 / sum(paper["passes"]))]
    assert paper4["switch_learning_rates"] == paper["switch_learning_rates"]


def test_a_custom_schedule_run_leaves_the_named_runs_directory_free(iwae_cli, output_root: Path) -> None:
    """The issue's case: a run of `schedule.passes=...` first, then the named schedule's run in the same root;
    both train, each in its own directory, and the tables' filter sees the named one only."""
    iwae_cli("train", "schedule=smoke", "schedule.passes=[2,1]", "k=2", *SMOKE)
    iwae_cli("train", "schedule=smoke", "k=2", *SMOKE)
    runs = sorted(p.parent.name for p in (output_root / "runs" / "mnist" / "L1-iwae-k2").glob("*/metrics.json"))
    custom = schedule_label(OmegaConf.create({**shipped_schedule("smoke"), "passes": [2, 1]}))
    assert runs == [f"{custom}-text-paper-sum-seed0", "smoke-text-paper-sum-seed0"]
    summary = OmegaConf.load(output_root / "runs/mnist/L1-iwae-k2" / runs[0] / "metrics.json")["run"]
    assert summary["schedule"] == custom
