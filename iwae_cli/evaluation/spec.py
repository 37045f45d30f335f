"""What an evaluation needs, as plain frozen settings built once from the command's config
(iwae_cli.specs.evaluation): where the images come from, the NLL estimate's k and draws, the active-unit rule
(with the reports' function that draws its histogram)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# draws the histogram of log A_u: (A_u per layer, threshold, path of the PNG, inclusive)
Histogram = Callable[[list["torch.Tensor"], float, Path, bool], None]


@dataclass(frozen=True)
class DataSource:
    """The run's registered dataset, the data directory (None: the default one), the download mode and the
    training images the run held out to validate on (its protocol.holdout: data.loading.load_dataset), so the
    splits are the ones it was trained with."""

    name: str
    data_dir: str | None
    download: str
    holdout: bool | int = True


@dataclass(frozen=True)
class NLLSpec:
    """-L_k on `examples` images of `split` (None: all), `batch_size` images and `chunk` samples at a time,
    binarisation and noise drawn from `seed`."""

    k: int
    split: str
    examples: int | None
    batch_size: int
    chunk: int
    seed: int
    progress: bool | None

    def recorded_as(self) -> dict[str, Any]:
        """What a metrics.json entry made with these settings holds (None: any value)."""
        return {"k": self.k, "seed": self.seed, "n": self.examples}


@dataclass(frozen=True)
class ActivitySpec:
    """Active units on `examples` binarised training images (drawn from `seed`): A_u > threshold (>= with
    inclusive), the paper's expectation over `posterior_samples` draws. `histogram` draws active_units.png;
    the command passes the reports' (iwae_cli.specs.evaluation), since this layer may not import the reports
    (None: no figure)."""

    threshold: float
    inclusive: bool
    examples: int
    posterior_samples: int
    seed: int
    histogram: Histogram | None = field(default=None, compare=False, repr=False)

    def recorded_as(self, name: str) -> dict[str, Any]:
        """What the metrics.json entry `name` (active_units or active_units_expected) made with these settings
        holds; the one-sample estimate has no posterior_samples."""
        rule = {"threshold": self.threshold, "inclusive": self.inclusive, "examples": self.examples}
        samples = self.posterior_samples if name == "active_units_expected" else None
        return {**rule, "posterior_samples": samples}


@dataclass(frozen=True)
class EvalSpec:
    """A finished run's evaluation (a table's cell, `iwae train evaluate=true`): the test NLL, both active-unit
    estimates and, with prune_inactive, the NLL of the model pruned to its active units."""

    data: DataSource
    nll: NLLSpec
    activity: ActivitySpec
    prune_inactive: bool
