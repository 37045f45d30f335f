"""Single-value checks: what they accept, and the one line that names a refused value and the fix."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from iwae_cli.errors import ConfigError
from iwae_cli.specs.checks import seed_list


def test_a_table_takes_a_list_of_distinct_seeds_as_the_config_gives_it() -> None:
    assert seed_list(OmegaConf.create({"seeds": [0, 1, 2]}).seeds) == [0, 1, 2]
    assert seed_list([5]) == [5]
    assert seed_list([2, 0]) == [0, 2]  # the order of the tables' per-seed columns


@pytest.mark.parametrize("value", [3, "0", [], [0, 0], [-1], [True], [0.5], None])
def test_anything_else_is_refused_with_an_example(value) -> None:
    with pytest.raises(ConfigError, match=r"^seeds must be a list of distinct whole numbers >= 0, for example "
                                          r"seeds=\[0,1,2\], got seeds="):
        seed_list(value)
