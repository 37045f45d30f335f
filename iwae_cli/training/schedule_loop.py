"""The staged schedule's loop, shared by one run (trainer.Trainer) and a group of runs trained in lockstep
(lockstep.GroupTrainer): stages of passes at their learning rates, a progress bar, checkpoints at each stage
end, every `checkpoint_minutes` and on a stop signal (SIGINT, SIGTERM, or a scheduler's warning added by
core.runtime.also_stop_on), then raising Interrupted.

The runs of a loop stand at the same place in the schedule; each keeps its own Position (its bound sums and
history differ). A step returns one bound sum per run.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import torch
from tqdm.auto import tqdm

from iwae_cli.core.runtime import StopFlag, progress_disabled, stop_on_signals
from iwae_cli.errors import Interrupted, NumericalError
from iwae_cli.runs.history import Position
from iwae_cli.training.spec import RunSettings, Schedule


class ScheduleLoop(ABC):
    """Subclasses set settings (when to checkpoint, progress bars, the resume hint), passes, rates, batch_size,
    train_x and positions, and say how to step and save."""

    settings: RunSettings
    schedule: Schedule
    passes: list[int]
    rates: list[float]
    batch_size: int
    train_x: torch.Tensor
    positions: list[Position]

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the checkpoints are, for messages."""

    @abstractmethod
    def step(self, batch: torch.Tensor) -> torch.Tensor:
        """One optimiser step of every run on `batch`; the bound's sum over it, one per run. NumericalError
        (nothing moved) on a non-finite loss or gradient."""

    @abstractmethod
    def set_learning_rate(self, lr: float) -> None: ...

    @abstractmethod
    def save(self) -> None:
        """Checkpoint every run."""

    @abstractmethod
    def end_epoch(self) -> None:
        """Validate, log and record the epoch of every run, and move each position to the next epoch."""

    @property
    def position(self) -> Position:
        """Where the runs stand (they all stand there)."""
        return self.positions[0]

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_x) // self.batch_size

    @property
    def remaining_steps(self) -> int:
        pos = self.position
        done = (sum(self.passes[: pos.stage]) + pos.epoch_in_stage) * self.steps_per_epoch + pos.step_in_epoch
        return sum(self.passes) * self.steps_per_epoch - done

    @property
    def finished(self) -> bool:
        return self.position.stage >= len(self.passes)

    def fit(self) -> Position:
        """Train to the end of the schedule; returns the (first run's) final position."""
        pos, resume_hint = self.position, self.settings.resume_hint
        total_steps = sum(self.passes) * self.steps_per_epoch
        bar = tqdm(
            total=total_steps,
            initial=total_steps - self.remaining_steps,
            disable=progress_disabled(self.settings.progress),
            unit="step",
        )
        last_save = time.monotonic()
        with stop_on_signals() as stop, bar:
            while not self.finished:
                self.set_learning_rate(self.rates[pos.stage])
                while pos.epoch_in_stage < self.passes[pos.stage]:
                    bar.set_description(
                        f"stage {pos.stage + 1}/{len(self.passes)} epoch {pos.epoch_in_stage + 1}/{self.passes[pos.stage]}"
                    )
                    last_save = self._run_epoch(bar, stop, last_save)
                    self.end_epoch()
                for p in self.positions:
                    p.stage, p.epoch_in_stage = p.stage + 1, 0
                self.save()
                last_save = time.monotonic()
            if stop:  # arrived after the last step (during the final validation or save): still stop here
                raise Interrupted(
                    f"stopped by {stop.signal_name} after training finished; checkpoint saved in "
                    f"{self.where}. Resume with: {resume_hint}",
                    stop.signum,
                )
        return pos

    def _bank(self, running: torch.Tensor, seconds: float) -> None:
        """Move the running bound sums and the elapsed time into the positions."""
        for p, value in zip(self.positions, running.tolist(), strict=True):
            p.epoch_bound_sum += value
            p.train_seconds += seconds
        running.zero_()

    def _run_epoch(self, bar, stop: StopFlag, last_save: float) -> float:
        pos, b = self.position, self.batch_size
        started, examples_at_start = time.monotonic(), pos.epoch_examples
        # float64 sums on the device, read back only when banked (no host sync per step for them)
        running = torch.zeros(len(self.positions), dtype=torch.float64, device=self.train_x.device)
        for step in range(pos.step_in_epoch, self.steps_per_epoch):
            if not self.schedule.rate_per_stage:  # a cosine stage or a warm-up: the rate of this very step
                step_in_stage = pos.epoch_in_stage * self.steps_per_epoch + step
                self.set_learning_rate(self.schedule.rate(pos.stage, step_in_stage, self.steps_per_epoch))
            try:
                running += self.step(self.train_x[step * b : (step + 1) * b])
            except NumericalError:
                raise NumericalError(
                    f"non-finite loss or gradient at stage {pos.stage + 1}, epoch {pos.epoch_in_stage + 1}, step "
                    f"{step + 1}; the last good checkpoint in {self.where} (if any) is kept. Lower the learning "
                    "rate (schedule.learning_rates=[...]) or change the seed"
                ) from None
            for p in self.positions:
                p.step_in_epoch, p.epoch_examples = step + 1, p.epoch_examples + b
            bar.update(1)
            now = time.monotonic()
            if bar.n % 50 == 0 and not bar.disable:
                rate = (pos.epoch_examples - examples_at_start) / max(now - started, 1e-9)
                mean = (pos.epoch_bound_sum + float(running[0])) / pos.epoch_examples
                bar.set_postfix(bound=f"{mean:.2f}", samples_s=f"{rate:.0f}", refresh=False)
            if stop or now - last_save >= 60 * self.settings.checkpoint_minutes:
                self._bank(running, now - started)
                started = now
                self.save()
                last_save = now
                if stop:
                    raise Interrupted(
                        f"stopped by {stop.signal_name} at stage {pos.stage + 1}, epoch {pos.epoch_in_stage + 1}, "
                        f"step {step + 1}; checkpoint saved in {self.where}. Resume with: {self.settings.resume_hint}",
                        stop.signum,
                    )
        self._bank(running, time.monotonic() - started)
        return last_save
