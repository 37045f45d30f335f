"""A table command's settings checked in full before it trains or writes anything: each value (specs/tables.py),
then every cell as `iwae train` would receive it, composed with Hydra's compose API and checked as a training job
checks its config (specs/run.py run_spec, the evaluation it asks for). A cell that could not train (a k that
MIWAE's groups do not divide, an override that is no setting of `iwae train`) is then one line and exit 2, not a
failed job after the others have trained."""

from __future__ import annotations

from hydra import compose
from hydra.errors import HydraException
from omegaconf import DictConfig, open_dict
from omegaconf.errors import OmegaConfBaseException

from iwae_cli.errors import ConfigError, first_line
from iwae_cli.specs.run import run_spec
from iwae_cli.specs.tables import TableSpec, table_spec
from iwae_cli.tasks.finish import evaluation_of
from iwae_cli.tasks.tables.sweep import cell_overrides

# A cell: (dataset, stochastic layers, objective, k).
Cell = tuple[str, int, str, int]


def checked_settings(cfg: DictConfig, cells: list[Cell] | None = None) -> TableSpec:
    """The table command's checked settings; ConfigError (one line) for the first bad value or the first cell
    that would not train. `cells`: the cells it trains (default: every cell of the spec's grid)."""
    spec = table_spec(cfg)
    if cells is None:
        cells = [(d, depth, o, k) for d in spec.datasets for depth in spec.depths for k in spec.ks for o in spec.objectives]
    for cell in cells:
        check_cell(cfg, spec, cell)
    return spec


def check_cell(cfg: DictConfig, spec: TableSpec, cell: Cell) -> None:
    """Compose the `iwae train` config of one cell (its first seed: the seeds differ in nothing else checked) and
    check it as its training job would."""
    d, depth, o, k = cell
    overrides = cell_overrides(cfg, spec, {"dataset": [d], "layers": [f"'{depth}'"], "k": [k], "model": [o],
                                           "seed": [spec.seeds[0]]}, threads=1)
    try:
        composed = compose(config_name="train", overrides=overrides, return_hydra_config=True)
        with open_dict(composed):
            del composed["hydra"]
        run_spec(composed, "")
        evaluation_of(composed)
    except (HydraException, OmegaConfBaseException, ConfigError) as e:
        given = f" with train_overrides={list(spec.train_overrides)}" if spec.train_overrides else ""
        raise ConfigError(
            f"the cell {d}/L{depth}-{o}-k{k} cannot be trained{given}: {first_line(e).rstrip('.')}; change the "
            "table's settings so that every cell can train"
        ) from None
