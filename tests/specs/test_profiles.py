"""The profiles (conf/profile) and what they tell a run (specs/profiles.py): each names a schedule of its own
(so run names cannot collide), and is turned into the same overrides for a table's jobs and a run command."""

from __future__ import annotations

import pytest

from iwae_cli.errors import ConfigError
from iwae_cli.specs.profiles import evaluation_overrides, load_profile, profile_names, schedule_override


def test_every_profile_has_a_schedule_no_other_profile_uses() -> None:
    schedules = [load_profile(n)["schedule"] for n in profile_names()]
    assert len(set(schedules)) == len(schedules), dict(zip(profile_names(), schedules, strict=True))


def test_medium_is_paper4_evaluated_as_the_paper_evaluates() -> None:
    assert load_profile("medium") == {
        "name": "medium", "schedule": "paper4", "eval_k": 5000, "eval_examples": None, "prune_inactive": False
    }


def test_a_profile_becomes_a_schedule_and_an_evaluation() -> None:
    medium = load_profile("medium")
    assert schedule_override(medium) == "schedule=paper4"
    # the whole test set is eval.examples=null, as Hydra reads it
    assert evaluation_overrides(medium, prune_inactive=True) == [
        "eval.k=5000", "eval.examples=null", "eval.prune_inactive=true"
    ]
    assert evaluation_overrides(load_profile("smoke"), prune_inactive=False)[1] == "eval.examples=100"


def test_an_unknown_profile_names_the_profiles() -> None:
    with pytest.raises(ConfigError, match="choose one of medium, paper, quick, smoke"):
        load_profile("fast")
