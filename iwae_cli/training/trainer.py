"""The training loop: the paper's staged schedule, checkpoints, exact resume, and a clean stop on signals.

One step is a pure function of (parameters, minibatch, noise): the binarisation and the reparameterisation noise
are drawn from the run's own generator before the objective is evaluated, so the same generator state gives the
same step. The generator's state is part of the checkpoint, which makes a resumed run bit-identical.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from iwae_cli.core.model import IWAEModel, build_model
from iwae_cli.core.noise import binarize, draw_noise
from iwae_cli.core.optim import build_optimizer, set_learning_rate
from iwae_cli.core.runtime import configure_torch
from iwae_cli.data.loading import load_dataset, training_pixel_means
from iwae_cli.errors import ConfigError, NumericalError
from iwae_cli.runs import checkpoint as ckpt
from iwae_cli.runs.history import Position, write_history
from iwae_cli.runs.snapshots import save_snapshot
from iwae_cli.tracking.spec import TrackingSpec
from iwae_cli.tracking.tracker import RunTracker
from iwae_cli.training.compile import compiled_or_none
from iwae_cli.training.schedule_loop import ScheduleLoop
from iwae_cli.training.spec import RunSpec
from iwae_cli.training.step import CompiledStep, train_step

log = logging.getLogger(__name__)


@torch.no_grad()
def mean_bound(
    model: IWAEModel, objective, x_binary: torch.Tensor, k: int, seed: int, batch_size: int
) -> float:
    """The objective's bound averaged over a fixed binary set, with noise from its own seeded generator (so the
    training generator is untouched and every epoch is measured on the same draws)."""
    generator = torch.Generator(x_binary.device).manual_seed(seed)
    total = torch.zeros((), dtype=torch.float64, device=x_binary.device)
    for start in range(0, len(x_binary), batch_size):
        x = x_binary[start : start + batch_size]
        noise = draw_noise(model, k, len(x), generator, x.device)
        total += objective(model, x, k, noise).bound.double().sum()
    return float(total) / len(x_binary)


@dataclass(frozen=True)
class TrainingData:
    """A run's images on its device: the training images it steps through, the validation images binarised
    once with the validation seed (None where none are held out), and the pixel means its decoder's output
    bias starts from. Runs of one dataset and settings may share one (a lockstep group does)."""

    train_x: torch.Tensor
    valid_x: torch.Tensor | None
    pixel_means: torch.Tensor


def training_data(spec: RunSpec) -> TrainingData:
    """The images `spec` trains and validates on (see TrainingData)."""
    data, device = spec.data, spec.settings.device
    splits = load_dataset(data.name, data.data_dir, data.download, holdout=data.holdout)
    n_train = spec.schedule.train_examples or len(splits.train)
    valid_generator = torch.Generator(device).manual_seed(spec.settings.validation_seed)
    # no validation set when training on the whole training split (the paper's text)
    valid_x = binarize(splits.valid.to(device), valid_generator) if len(splits.valid) else None
    return TrainingData(splits.train[:n_train].to(device), valid_x, training_pixel_means(splits.train))


class Trainer(ScheduleLoop):
    """Owns one run: its data, model, optimiser, generator and position; `fit` runs the remaining schedule
    (with the compiled step where the spec's `compile` asks for it). `checkpoint`: the run's own checkpoint,
    already read and matched against its identity (None: a new run); `parent`: the checkpoint a new run starts
    from (switch-objective: model and optimiser state); `data`: images to share with other runs
    (training_data(spec) where None); `tracker`: the trackers each epoch is logged to (none where None)."""

    def __init__(
        self,
        spec: RunSpec,
        run_dir: Path,
        checkpoint: dict[str, Any] | None = None,
        parent: dict[str, Any] | None = None,
        data: TrainingData | None = None,
        tracker: RunTracker | None = None,
    ):
        self.spec, self.run_dir = spec, run_dir
        self.tracker = tracker or RunTracker(TrackingSpec(), run_dir)
        self.settings = spec.settings
        self.device = spec.settings.device
        configure_torch(spec.settings.threads)
        self.k = spec.objective.k
        self.schedule = spec.schedule
        self.batch_size = spec.schedule.batch_size
        self.passes = list(spec.schedule.passes)
        self.rates = list(spec.schedule.learning_rates)
        self.objective = spec.objective.build()

        data = data or training_data(spec)
        self.train_x, self.valid_x = data.train_x, data.valid_x
        init = spec.model
        self.model = build_model(init.arch, data.pixel_means, init.seed, init.same_seed_init).to(self.device)
        self.optimizer = build_optimizer(self.model.parameters(), spec.optim, self.rates[0])
        self.generator = torch.Generator(self.device).manual_seed(spec.settings.seed)
        self.positions = [Position()]
        self._restore(checkpoint, parent)
        self.compiled_step: CompiledStep | None = None

    def fit(self) -> Position:
        """Train to the end of the schedule, compiling the step first where `compile` asks for it."""
        if self.spec.objective.log_weight_bound() is not None:  # the compiled step needs a bound of log w
            self.compiled_step = compiled_or_none(
                self.settings.compile, self.remaining_steps, self._compile, "the training step"
            )
        return super().fit()

    def _compile(self) -> CompiledStep:
        bound, reduction = self.spec.objective.log_weight_bound(), self.spec.objective.reduction
        return CompiledStep(self.model, self.optimizer, bound, self.k, self.batch_size, reduction)

    def _restore(self, checkpoint: dict[str, Any] | None, parent: dict[str, Any] | None) -> None:
        if checkpoint is not None:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            # generator states are CPU byte tensors, even a CUDA generator's
            self.generator.set_state(checkpoint["generator"].cpu())
            self.positions = [Position(**checkpoint["position"])]
            pos = self.position
            # numbered as the stop message numbers the step it stopped after, so the two lines can be matched
            log.info(
                "resuming %s at stage %d, epoch %d, step %d (%d passes done)",
                self.run_dir,
                pos.stage + 1,
                pos.epoch_in_stage + 1,
                pos.step_in_epoch,
                pos.passes_done,
                extra=self.log_extra,
            )
        elif parent is not None:
            try:
                self.model.load_state_dict(parent["model"])
            except RuntimeError:  # parameters of other shapes
                raise ConfigError("the run it continues has another architecture than this run") from None
            self.optimizer.load_state_dict(parent["optimizer"])  # Table 2 keeps the optimiser state
            log.info("starting from the model and optimiser state of %s", self.spec.parent, extra=self.log_extra)

    def save(self, name: str = ckpt.CHECKPOINT_NAME) -> None:
        """Checkpoint the current state (to run_dir/<name>); refuses (NumericalError) if any parameter is not
        finite."""
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise NumericalError("non-finite parameters; the last good checkpoint is kept")
        ckpt.save_checkpoint(
            self.run_dir,
            {
                "config": self.spec.fingerprint,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(),
                "position": asdict(self.position),
            },
            name,
        )

    @property
    def where(self) -> str:
        return str(self.run_dir)

    @property
    def log_extra(self) -> dict[str, str]:
        """Marks this run's log records, so a lockstep group writes them to this run's train.log alone."""
        return {"run_dir": str(self.run_dir)}

    def step(self, batch: torch.Tensor) -> torch.Tensor:
        if self.compiled_step is not None:
            bound_sum = self.compiled_step(batch, self.generator)
        else:
            bound_sum = train_step(self.model, self.optimizer, self.objective, batch, self.k, self.generator)
        return bound_sum.reshape(1)

    def set_learning_rate(self, lr: float) -> None:
        set_learning_rate(self.optimizer, lr)

    @property
    def examples_per_epoch(self) -> int:
        return self.steps_per_epoch * self.batch_size

    def end_epoch(self) -> None:
        """Validate on the fixed binarised validation set, log the epoch, record it in train_log.csv (and in
        the trackers, which only read it)."""
        pos = self.position
        seed = self.spec.settings.validation_seed
        valid = (
            math.nan
            if self.valid_x is None
            else mean_bound(self.model, self.objective, self.valid_x, self.k, seed, 100)
        )
        train_bound = pos.epoch_bound_sum / max(pos.epoch_examples, 1)
        if not (math.isfinite(train_bound) and (self.valid_x is None or math.isfinite(valid))):
            raise NumericalError(
                f"non-finite bound after epoch {pos.passes_done + 1}; the last good checkpoint is kept"
            )
        pos.passes_done += 1
        pos.history.append(
            {
                "stage": pos.stage + 1,
                "epoch": pos.epoch_in_stage + 1,
                "passes_done": pos.passes_done,
                # the rate of the epoch's last step (a cosine stage's falls within the epoch)
                "learning_rate": self.schedule.rate(
                    pos.stage, (pos.epoch_in_stage + 1) * self.steps_per_epoch - 1, self.steps_per_epoch
                ),
                "train_bound": train_bound,
                "valid_bound": valid,
                "seconds": round(pos.train_seconds, 3),
            }
        )
        log.info(
            "stage %d epoch %d: train bound %.3f, %s (k=%d)",
            pos.stage + 1,
            pos.epoch_in_stage + 1,
            train_bound,
            "no validation set (protocol.holdout=false)"
            if self.valid_x is None
            else f"valid bound {valid:.3f}",
            self.k,
            extra=self.log_extra,
        )
        write_history(self.run_dir, pos.history)
        if pos.passes_done in self.settings.snapshot_passes or (
            self.settings.snapshot_passes and pos.passes_done == sum(self.passes)
        ):
            save_snapshot(self.run_dir, pos.passes_done, self.model.state_dict(), pos.train_seconds)
        self.tracker.log_epochs(pos.history, self.examples_per_epoch)
        pos.epoch_in_stage += 1
        pos.step_in_epoch, pos.epoch_bound_sum, pos.epoch_examples = 0, 0.0, 0
