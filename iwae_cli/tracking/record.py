"""What a tracker records of a run, as plain values shared by every backend (so TensorBoard and MLflow show the
same names): each epoch's row of train_log.csv, the results in metrics.json, the figures beside them and the
resolved config as flat hyperparameters."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from iwae_cli.core.activity import AU_ENTRIES

FIGURES = ("learning_curve.png", "samples.png", "active_units.png")
SPLITS = ("test", "valid", "train")
# the metrics TensorBoard's HParams table shows beside each run's hyperparameters
SUMMARY_METRICS = ("train/bound", "valid/bound", "test/nll", "test/nll_pruned", "active_units/total")


def epoch_values(row: dict[str, Any], previous: dict[str, Any] | None, examples: int) -> dict[str, float]:
    """One train_log.csv row as metrics: the bounds (the validation bound only where images are held out), the
    stage, the learning rate and the epoch's training throughput (examples per second of training time)."""
    values = {
        "train/bound": float(row["train_bound"]),
        "train/stage": float(row["stage"]),
        "train/learning_rate": float(row["learning_rate"]),
    }
    if math.isfinite(float(row["valid_bound"])):
        values["valid/bound"] = float(row["valid_bound"])
    seconds = float(row["seconds"]) - (float(previous["seconds"]) if previous else 0.0)
    if seconds > 0:
        values["train/samples_per_second"] = examples / seconds
    return values


def result_values(metrics: dict[str, Any]) -> dict[str, float]:
    """The results metrics.json holds: each split's NLL with its standard error (and pruned to the active units,
    where computed), and the active units per layer and in all, by both estimates."""
    values = {}
    for split in SPLITS:
        for suffix in ("", "_pruned"):
            entry = metrics.get(f"{split}_nll{suffix}")
            if entry:
                values[f"{split}/nll{suffix}"] = float(entry["nll"])
                values[f"{split}/nll{suffix}_se"] = float(entry["standard_error"])
    for name in AU_ENTRIES:
        counts = (metrics.get(name) or {}).get("counts")
        if counts:
            values.update({f"{name}/layer{i}": float(c) for i, c in enumerate(counts, start=1)})
            values[f"{name}/total"] = float(sum(counts))
    return values


def result_step(metrics: dict[str, Any], default: int) -> int:
    """The step results are logged at: the run's last epoch."""
    return int((metrics.get("train") or {}).get("passes_done") or default)


def figures(run_dir: Path) -> list[Path]:
    """The run's figures that exist."""
    return [run_dir / name for name in FIGURES if (run_dir / name).exists()]


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """A nested config as dotted keys with plain values (lists as JSON, null as "null"): what both trackers take
    as hyperparameters."""
    flat: dict[str, str | int | float | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat


# PNG colour type -> TensorBoard's colorspace (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA)
COLORSPACES = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def png_header(data: bytes) -> tuple[int, int, int]:
    """A PNG's width, height and TensorBoard colorspace, read from its IHDR chunk (the image itself is logged as
    written, never decoded)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    width, height, _, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, COLORSPACES.get(colour, 4)
