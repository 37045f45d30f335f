"""`iwae <command> --help` (cli/help.py): each command's own groups and settings, read from its config files.

What a page lists is checked against what Hydra composes for that command, so a page cannot offer a group or a
setting the command refuses, nor leave out a group it takes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from iwae_cli.cli.help import command_help, read_config, split_comment
from iwae_cli.cli.profiles import PROFILE_OVERRIDES, TABLE_COMMANDS

# command -> its config's name (cli/main.py registers each so)
COMMANDS = {
    name: name.replace("-", "_")
    for name in ("train", "eval-nll", "active-units", "switch-objective", "table1", "table2", "table-extra",
                 "frontier", "grad-snr", "bench")
}


@pytest.fixture(scope="module", autouse=True)
def packaged_configs() -> Iterator[None]:
    with initialize_config_module(config_module="iwae_cli.conf", version_base="1.3"):
        yield
    HydraConfig.instance().cfg = None


def section(page: str, title: str) -> list[str]:
    """The lines of the page's section that starts with `title` (up to the blank line ending it)."""
    body = page.split(f"\n{title}", 1)[1].split("\n\n", 1)[0]
    return body.splitlines()[1:]


def listed_groups(page: str) -> dict[str, str]:
    """Group -> the text beside it, from the page's "Config groups" section."""
    return {line.split()[0]: line for line in section(page, "Config groups") if not line.startswith("   ")}


@pytest.mark.parametrize("command", COMMANDS)
def test_the_groups_listed_are_those_the_command_composes(command: str) -> None:
    cfg = compose(COMMANDS[command], return_hydra_config=True)
    taken = {group for group in cfg.hydra.runtime.choices if not group.startswith("hydra/")}
    listed = set(listed_groups(command_help(command, COMMANDS[command])))
    # profile=: a group of the table commands', an expansion of the CLI's for the run commands (cli/profiles.py)
    expected = taken | ({"profile"} if command in PROFILE_OVERRIDES else set())
    assert listed == expected


@pytest.mark.parametrize("command", COMMANDS)
def test_every_setting_listed_is_one_the_command_takes(command: str) -> None:
    cfg = compose(COMMANDS[command])
    config = read_config(COMMANDS[command])
    keys = [s.key for c in (config, *map(read_config, config.includes)) for s in c.settings]
    assert keys
    for key in keys:
        assert OmegaConf.select(cfg, key, default="absent") != "absent", key


def test_train_help_shows_its_defaults_with_their_comments() -> None:
    page = command_help("train", "train")
    groups = listed_groups(page)
    assert "[mnist]" in groups["dataset"] and "smoke" in groups["schedule"] and "[iwae]" in groups["model"]
    assert "sets schedule, eval.k, eval.examples, eval.prune_inactive" in " ".join(
        line.strip() for line in section(page, "Config groups")
    )
    settings = " ".join(line.strip() for line in section(page, "Settings"))
    assert "k=5 importance samples per example during training" in " ".join(settings.split())
    # a comment continued on the lines below its setting's is part of it
    assert "auto (nll with evaluate=true, else valid_nll_bound)" in " ".join(settings.split())
    assert page.startswith("iwae train: train one IWAE/VAE model")


def test_table1_help_offers_its_profiles_and_no_training_group() -> None:
    groups = listed_groups(command_help("table1", "table1"))
    assert "[quick]" in groups["profile"] and "medium" in groups["profile"]
    assert not {"dataset", "model", "schedule", "layers"} & set(groups)


WITHOUT_PROFILE = [c for c in COMMANDS if c not in PROFILE_OVERRIDES and c not in TABLE_COMMANDS]


@pytest.mark.parametrize("command", WITHOUT_PROFILE)
def test_commands_without_a_profile_do_not_offer_one(command: str) -> None:
    assert "profile" not in listed_groups(command_help(command, COMMANDS[command]))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_line_fits_80_columns(command: str) -> None:
    for line in command_help(command, COMMANDS[command]).splitlines():
        assert len(line) <= 80, line


def test_a_comment_starts_at_a_hash_outside_quotes() -> None:
    assert split_comment("'a # b'   # the comment") == ("'a # b'", "the comment")
    assert split_comment("${oc.env:X,null}") == ("${oc.env:X,null}", "")
