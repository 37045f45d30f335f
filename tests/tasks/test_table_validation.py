"""The table commands' settings checked before anything trains (specs/tables.py, tasks/tables/settings.py), and
how a table replaces its files (tasks/tables/publish.py): together, and never an earlier table with numbers by
one without."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from iwae_cli.errors import ConfigError
from iwae_cli.reports.tables.outcome import NO_CELLS, TableIncomplete
from iwae_cli.tasks.tables.publish import TABLE1_FILES, publish
from iwae_cli.tasks.tables.settings import checked_settings


@pytest.fixture
def hydra() -> Iterator[None]:
    """The configs' module, as inside a table command (the cells are composed from it)."""
    with initialize_config_module(config_module="iwae_cli.conf", version_base="1.3"):
        yield


def composed(config: str, *overrides: str) -> DictConfig:
    return compose(config, overrides=["output_root=/tmp/iwae-out", "device=cpu", *overrides])


def test_the_shipped_settings_pass_and_are_typed(hydra) -> None:
    spec = checked_settings(composed("table1"))
    assert spec.datasets == ("mnist", "omniglot") and spec.depths == (1, 2) and spec.ks == (1, 5, 50)
    assert spec.objectives == ("vae", "iwae") and spec.seeds == (0,) and spec.group == "auto"
    assert spec.profile.name == "quick" and spec.profile.eval_k == 5000 and spec.train_overrides == ()
    extra = checked_settings(composed("table_extra"))
    assert extra.baseline == "iwae" and "miwae" in extra.objectives
    assert checked_settings(composed("table2", "seeds=[2,0]", "group=true"), [("mnist", 1, "vae", 1)]).seeds == (0, 2)


@pytest.mark.parametrize(
    ("config", "override", "expected"),
    [
        ("table1", "datasets=[mnsit]", "datasets: unknown dataset 'mnsit'"),
        ("table1", "datasets=[]", "datasets must be a list of distinct values"),
        ("table1", "ks=[0]", "ks must list whole numbers >= 1"),
        ("table1", "ks=[5,5]", "ks must be a list of distinct values"),
        ("table1", "ks=5", "ks must be a list"),
        ("table1", "depths=[3]", "the cell mnist/L3-vae-k1 cannot be trained: In 'train': Could not find 'layers/3'"),
        ("table1", "objectives=[nope]", "objectives: unknown objective 'nope'"),
        ("table1", "objectives=[vae,miwae]", "the cell mnist/L1-miwae-k1 cannot be trained: model.groups (M=5)"),
        ("table1", "seeds=[-1]", "seeds must be a list of distinct whole numbers >= 0"),
        ("table1", "loss_reduction=avg", "loss_reduction must be sum"),
        ("table1", "group=maybe", "group must be"),
        ("table1", "n_jobs=0", "n_jobs must be a whole number >= 1"),
        ("table1", "profile.eval_k=0", "profile.eval_k must be a whole number >= 1"),
        ("table1", "profile.eval_examples=-5", "profile.eval_examples must be a whole number >= 1"),
        ("table1", "train_overrides=['k=5']", "'k=5' sets k, which the table sets for each cell; give the table's own ks"),
        ("table1", "train_overrides=['optim=original_code']", "sets optim"),
        ("table1", "train_overrides=['threads=1,2']", "'threads=1,2' is a sweep"),
        ("table1", "train_overrides=['nosuchkey=1']", "with train_overrides=['nosuchkey=1']: Could not override"),
        ("table1", "train_overrides=['checkpoint_minutes=-1']", "checkpoint_minutes must be a number >= 0"),
        ("table1", "train_overrides=checkpoint_minutes", "train_overrides must be a list of iwae train overrides"),
        ("table_extra", "baseline=iwae2", "baseline=iwae2 is not one of objectives"),
        ("table_extra", "ks=[4]", "the cell mnist/L1-miwae-k4 cannot be trained: model.groups (M=5) must divide k=4"),
        ("table2", "seeds=3", "seeds must be a list of distinct whole numbers >= 0"),
        ("table2", "train_overrides=['model.alpha=2.0']", "Could not override 'model.alpha'"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(hydra, config: str, override: str, expected: str) -> None:
    cells = [("mnist", 1, "vae", 1)] if config == "table2" else None
    with pytest.raises(ConfigError) as raised:
        checked_settings(composed(config, "datasets=[mnist]" if config == "table1" else "seeds=[0]", override),
                         cells)
    message = str(raised.value)
    assert expected in message and "\n" not in message and raised.value.exit_code == 2


# ---- replacing a table's files


def earlier_table(folder: Path) -> dict[str, bytes]:
    """A complete earlier Table 1 in `folder` (a cell with numbers, every figure); its files' bytes."""
    folder.mkdir(parents=True)
    for name in TABLE1_FILES:
        (folder / name).write_bytes(f"earlier {name}".encode())
    pd.DataFrame({"objective": ["vae"], "nll": [90.0], "status": ["done"]}).to_csv(folder / "table1.csv", index=False)
    return files_of(folder)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_table_without_numbers_keeps_an_earlier_one_with_numbers(tmp_path: Path) -> None:
    before = earlier_table(tmp_path / "smoke")
    statuses = pd.Series(["not run: OMNIGLOT not found", "failed: out of memory"])
    with pytest.raises(TableIncomplete) as raised:
        publish(tmp_path / "smoke", TABLE1_FILES, "Table 1", statuses, lambda folder: pytest.fail("written"))
    assert raised.value.exit_code == NO_CELLS
    assert "no Table 1 cell has numbers (not run: OMNIGLOT not found; failed: out of memory)" in str(raised.value)
    assert "earlier table in" in str(raised.value) and "is kept" in str(raised.value)
    assert files_of(tmp_path / "smoke") == before


def test_a_table_without_numbers_is_written_where_there_is_none_to_keep(tmp_path: Path) -> None:
    statuses = pd.Series(["not run: OMNIGLOT not found"])
    publish(tmp_path / "smoke", TABLE1_FILES, "Table 1", statuses,
            lambda folder: (folder / "table1.csv").write_text("status\nnot run\n"))
    assert files_of(tmp_path / "smoke") == {"table1.csv": b"status\nnot run\n"}


def test_a_failure_while_the_files_are_made_leaves_the_earlier_table(tmp_path: Path) -> None:
    before = earlier_table(tmp_path / "smoke")

    def write(folder: Path) -> None:
        (folder / "table1.csv").write_text("status\ndone\n")
        (folder / "table1.md").write_text("# new")
        raise KeyboardInterrupt  # e.g. Ctrl-C while a figure is drawn

    with pytest.raises(KeyboardInterrupt):
        publish(tmp_path / "smoke", TABLE1_FILES, "Table 1", pd.Series(["done"]), write)
    assert files_of(tmp_path / "smoke") == before  # no staging folder left either


def test_a_new_table_replaces_the_whole_set(tmp_path: Path) -> None:
    earlier_table(tmp_path / "smoke")
    (tmp_path / "smoke" / "table2.csv").write_text("another table's file")

    def write(folder: Path) -> None:
        (folder / "table1.csv").write_text("status\ndone\n")
        (folder / "samples.png").write_bytes(b"new samples")

    publish(tmp_path / "smoke", TABLE1_FILES, "Table 1", pd.Series(["done"]), write)
    # a figure the new table has no data for is not left from the earlier one; other tables' files stay
    assert files_of(tmp_path / "smoke") == {
        "samples.png": b"new samples", "table1.csv": b"status\ndone\n", "table2.csv": b"another table's file"
    }
