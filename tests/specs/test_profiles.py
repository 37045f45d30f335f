"""The profiles (conf/profile) and what they tell a run (specs/profiles.py): each names a schedule of its own
(so run names cannot collide), and is turned into the same overrides for a table's jobs and a run command."""

from __future__ import annotations

import re

import pytest
import yaml

from iwae_cli.errors import ConfigError
from iwae_cli.specs.profiles import (
    Profile,
    conf_dir,
    evaluation_overrides,
    load_profile,
    profile_names,
    profile_of,
    schedule_override,
)


def test_every_profile_has_a_schedule_no_other_profile_uses() -> None:
    schedules = [load_profile(n).schedule for n in profile_names()]
    assert len(set(schedules)) == len(schedules), dict(zip(profile_names(), schedules, strict=True))


def test_medium_is_paper4_evaluated_as_the_paper_evaluates() -> None:
    assert load_profile("medium") == Profile(
        name="medium", schedule="paper4", eval_k=5000, eval_examples=None, prune_inactive=False
    )


def test_a_profile_becomes_a_schedule_and_an_evaluation() -> None:
    medium = load_profile("medium")
    assert schedule_override(medium) == "schedule=paper4"
    # the whole test set is eval.examples=null, as Hydra reads it
    assert evaluation_overrides(medium, prune_inactive=True) == [
        "eval.k=5000", "eval.examples=null", "eval.prune_inactive=true"
    ]
    assert evaluation_overrides(load_profile("smoke"), prune_inactive=False)[1] == "eval.examples=100"


def test_an_unknown_profile_names_the_profiles() -> None:
    with pytest.raises(ConfigError, match="choose one of fast, medium, paper, quick, smoke"):
        load_profile("fats")


def test_fast_is_one_cosine_stage_evaluated_as_the_paper_evaluates() -> None:
    """The frontier's choice (docs/frontier.md): 90 passes at minibatch 20, the rate from 1e-3 down a half cosine;
    k=5000 on the whole test set; Table 2's second stage 60 passes (2,187 / 3,280 of 90) from 1e-4."""
    assert load_profile("fast") == Profile(
        name="fast", schedule="fast", eval_k=5000, eval_examples=None, prune_inactive=False
    )
    schedule = yaml.safe_load((conf_dir() / "schedule" / "fast.yaml").read_text())
    assert {key: schedule[key] for key in ("batch_size", "passes", "learning_rates", "anneal", "min_learning_rate")} == {
        "batch_size": 20, "passes": [90], "learning_rates": [1e-3], "anneal": "cosine", "min_learning_rate": 0.0
    }
    # Table 2's second stage in the paper's proportion, from the paper's final rate (the recipe's own ends at 0)
    assert schedule["switch_passes"] == [round(sum(schedule["passes"]) * 2187 / 3280)]
    assert schedule["switch_learning_rates"] == [1e-4]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("eval_k", 0, "profile.eval_k must be a whole number >= 1, got profile.eval_k=0"),
    ("eval_examples", "all", "profile.eval_examples must be a whole number >= 1 (or null)"),
    ("prune_inactive", "yes", "profile.prune_inactive must be true or false"),
    ("name", "my profile", "profile.name names the tables' folder"),
])
def test_a_profile_with_an_unusable_value_is_one_line(key: str, value: object, message: str) -> None:
    given = {**vars(load_profile("quick")), key: value}
    with pytest.raises(ConfigError, match=re.escape(message)):
        profile_of(given)
