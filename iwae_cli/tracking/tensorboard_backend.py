"""TensorBoard: a run's scalars, hyperparameters and figures as event files, written with torch's SummaryWriter
into the run's own directory by default, so `tensorboard --logdir outputs/runs` names each run by its path.

A resumed run appends a new event file to the same directory. The writer's purge_step hides whatever the
killed process wrote after the last epoch it recorded as logged (TensorBoard's own mechanism for a restart from
an earlier step), so no epoch shows twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iwae_cli.tracking.record import SUMMARY_METRICS, png_header
from iwae_cli.tracking.spec import TensorBoardSpec


class TensorBoardBackend:
    """One run's event files; `open` before logging (it imports TensorBoard)."""

    name = "tensorboard"

    def __init__(self, spec: TensorBoardSpec, run_dir: Path, run_name: str):
        self.log_dir = run_dir if spec.save_dir is None else spec.save_dir / run_name
        self.key = str(self.log_dir)  # where its state is kept in the run's tracking.json
        self.writer: Any = None

    def open(self, entry: dict[str, Any], params: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
        """Start (or continue) the run's event files; the hyperparameters and tags are written once, with the
        run's first event file. Returns the state to keep: the last epoch logged and whether hparams are."""
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        logged = int(entry.get("logged_through", 0))
        purge = logged + 1 if entry else None  # a continued run: hide what was written past the record
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(self.log_dir), purge_step=purge)
        if not entry.get("hparams"):
            for summary in hparams({**params, **tags}, dict.fromkeys(SUMMARY_METRICS, 0.0)):
                self.writer.file_writer.add_summary(summary)
        return {"logged_through": logged, "hparams": True}

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()  # on disk before the epoch is recorded as logged

    def log_figures(self, step: int, paths: list[Path]) -> None:
        """Each PNG as an image summary of the bytes as written (TensorBoard decodes them itself)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        for path in paths:
            data = path.read_bytes()
            width, height, colorspace = png_header(data)
            image = Summary.Image(
                height=height, width=width, colorspace=colorspace, encoded_image_string=data
            )
            summary = Summary(value=[Summary.Value(tag=f"figures/{path.stem}", image=image)])
            self.writer.file_writer.add_summary(summary, step)
        self.writer.flush()

    def close(self, outcome: str | None) -> None:
        """Flush and close the event file (TensorBoard has no run status: `outcome` is MLflow's)."""
        self.writer.close()
