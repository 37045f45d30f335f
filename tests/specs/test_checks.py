"""Single-value checks: what they accept, and the one line that names a refused value and the fix."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from iwae_cli.errors import ConfigError
from iwae_cli.specs.checks import (
    AUTO_TRUE_FALSE,
    choice,
    device_name,
    flag,
    progress_setting,
    seed_list,
    setting,
)


def test_a_table_takes_a_list_of_distinct_seeds_as_the_config_gives_it() -> None:
    assert seed_list(OmegaConf.create({"seeds": [0, 1, 2]}).seeds) == [0, 1, 2]
    assert seed_list([5]) == [5]
    assert seed_list([2, 0]) == [0, 2]  # the order of the tables' per-seed columns


@pytest.mark.parametrize("value", [3, "0", [], [0, 0], [-1], [True], [0.5], None])
def test_anything_else_is_refused_with_an_example(value) -> None:
    with pytest.raises(ConfigError, match=r"^seeds must be a list of distinct whole numbers >= 0, for example "
                                          r"seeds=\[0,1,2\], got seeds="):
        seed_list(value)


@pytest.mark.parametrize("value, expected", [(True, True), (False, False), ("true", True), ("TRUE", True),
                                             ("False", False), ("fAlSe", False)])
def test_a_flag_takes_true_or_false_in_any_case(value, expected: bool) -> None:
    assert flag(value, "evaluate") is expected


@pytest.mark.parametrize("value", ["yes", "no", "maybe", "1", "0", 1, 0, None, "", 0.0, "on"])
def test_a_flag_refuses_anything_else(value) -> None:
    with pytest.raises(ConfigError, match=f"^evaluate must be true or false, got evaluate={value}$"):
        flag(value, "evaluate")


def test_a_choice_takes_its_choices_and_true_false_in_any_case() -> None:
    assert choice("auto", "progress", AUTO_TRUE_FALSE) == "auto"
    assert choice(True, "progress", AUTO_TRUE_FALSE) == "true"  # Hydra reads progress=True as a bool
    assert choice("FALSE", "compile", AUTO_TRUE_FALSE) == "false"
    for value in ("maybe", 1, "yes", None, "AUTO", ""):
        with pytest.raises(ConfigError, match=f"^compile must be auto, true or false, got compile={value}$"):
            choice(value, "compile", AUTO_TRUE_FALSE)


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_a_device_name(value: str) -> None:
    assert device_name(value) == value


@pytest.mark.parametrize("value", ["gpu", "tpu", "cuda:", "cuda:x", "CPU", "mps:0", 0, True])
def test_anything_else_is_no_device(value) -> None:
    with pytest.raises(ConfigError, match=r"^device must be auto, cpu, cuda, cuda:<index> or mps, got device="):
        device_name(value)


def test_a_setting_is_read_from_its_node_or_its_default() -> None:
    cfg = OmegaConf.create({"evaluate": "True", "progress": False, "eval": {"prune_inactive": "no"}, "arch": {}})
    assert setting(cfg, "evaluate", False) is True
    assert setting(cfg, "arch.same_seed_init", False) is False  # the default, checked as given
    assert setting(cfg, "protocol.round_learning_rates", False) is False  # a node the config lacks
    assert progress_setting(cfg) is False and progress_setting(OmegaConf.create({})) is None
    with pytest.raises(ConfigError, match="^eval.prune_inactive must be true or false, got eval.prune_inactive=no$"):
        setting(cfg, "eval.prune_inactive", False)


def test_the_settings_the_command_line_checks_load_no_torch() -> None:
    """The command line checks choice settings before a job starts (cli/overrides.py): their names and values
    come from core/setting_names.py, which imports nothing, through specs/checks.py."""
    code = (
        "import sys; import iwae_cli.specs.checks, iwae_cli.core.setting_names; "
        "print(sorted(m for m in ('torch', 'omegaconf', 'hydra') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
