"""The profiles the table commands take: each names a schedule of its own (so run names cannot collide)."""

from __future__ import annotations

from importlib.resources import files

import yaml

PROFILES = files("iwae_cli.conf").joinpath("profile")


def profile(name: str) -> dict:
    return yaml.safe_load(PROFILES.joinpath(f"{name}.yaml").read_text())


def test_every_profile_has_a_schedule_no_other_profile_uses() -> None:
    names = [p.name[: -len(".yaml")] for p in PROFILES.iterdir() if p.name.endswith(".yaml")]
    schedules = [profile(n)["schedule"] for n in names]
    assert len(set(schedules)) == len(schedules), dict(zip(names, schedules, strict=True))


def test_medium_is_paper4_evaluated_as_the_paper_evaluates() -> None:
    assert profile("medium") == {
        "name": "medium", "schedule": "paper4", "eval_k": 5000, "eval_examples": None, "prune_inactive": False
    }
