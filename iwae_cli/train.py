"""The training loop: the paper's staged schedule, checkpoints, exact resume, and a clean stop on signals.

One step is a pure function of (parameters, minibatch, noise): the binarisation and the reparameterisation noise
are drawn from the run's own generator before the objective is evaluated, so the same generator state gives the
same step. The generator's state is part of the checkpoint, which makes a resumed run bit-identical.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from .atomic import atomic_write_text
from .checks import number, whole_number
from .datasets import binarize, load_dataset, training_pixel_means
from .errors import ConfigError, NumericalError, first_line
from .model import IWAEModel, build_model
from .objectives import LOG_WEIGHT_BOUNDS, get_objective, log_weight_bound
from .optim import build_optimizer, set_learning_rate
from .runs import CONFIG_NAME, record_metrics, run_summary, write_status
from .runtime import (
    Interrupted,
    configure_torch,
    progress_disabled,
    progress_setting,
    resolve_device,
    stop_on_signals,
)
from .step import CompiledStep, train_step

log = logging.getLogger(__name__)

HISTORY_CSV = "train_log.csv"
# compile=auto compiles the step for runs at least this long (compiling takes ~10 s)
COMPILE_MIN_STEPS = 2_000
HISTORY_COLUMNS = ("stage", "epoch", "passes_done", "learning_rate", "train_bound", "valid_bound", "seconds")


@dataclass
class Position:
    """Where a run stands in its schedule, plus the running sums of the epoch in progress."""

    stage: int = 0
    epoch_in_stage: int = 0
    step_in_epoch: int = 0
    passes_done: int = 0
    epoch_bound_sum: float = 0.0
    epoch_examples: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def compile_setting(cfg: DictConfig) -> str:
    """The `compile` setting as auto/true/false text (Hydra parses compile=true as a bool)."""
    return str(cfg.get("compile", "auto")).lower()


def validate_config(cfg: DictConfig) -> None:
    """Reject unusable values with one line each, before any data is read."""
    whole_number(cfg.k, "k")
    whole_number(cfg.seed, "seed", minimum=0)
    number(cfg.checkpoint_minutes, "checkpoint_minutes")
    compile_choice = compile_setting(cfg)
    if compile_choice not in ("auto", "true", "false"):
        raise ConfigError(f"compile must be auto, true or false, got {cfg.compile}")
    if compile_choice == "true" and cfg.model.name not in LOG_WEIGHT_BOUNDS:
        raise ConfigError(
            f"compile=true needs an objective that is a bound of the log weights ({', '.join(LOG_WEIGHT_BOUNDS)}); "
            f"model={cfg.model.name} trains with compile=false"
        )
    schedule = cfg.schedule
    batch = whole_number(schedule.batch_size, "schedule.batch_size")
    passes, rates = list(schedule.passes), list(schedule.learning_rates)
    if not passes or len(passes) != len(rates):
        raise ConfigError(
            f"schedule.passes ({len(passes)} stages) and schedule.learning_rates ({len(rates)}) must be "
            "non-empty lists of the same length"
        )
    if any(not isinstance(p, int) or isinstance(p, bool) or p < 0 for p in passes):
        raise ConfigError(f"schedule.passes must be whole numbers >= 0, got {passes}")
    if any(not isinstance(r, int | float) or isinstance(r, bool) or not r > 0 for r in rates):
        raise ConfigError(f"schedule.learning_rates must be positive numbers, got {rates}")
    n = schedule.get("train_examples")
    if n is not None and (not isinstance(n, int) or n < batch):
        raise ConfigError(f"schedule.train_examples must be null or >= batch_size ({batch}), got {n}")


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
        noise = [torch.randn(s, generator=generator, device=x.device) for s in model.noise_shapes(k, len(x))]
        total += objective(model, x, k, noise).bound.double().sum()
    return float(total) / len(x_binary)


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """The per-epoch log as CSV, rewritten atomically (so a resumed run never shows rows it later redid)."""
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [
        ",".join(repr(row[c]) if isinstance(row[c], float) else str(row[c]) for c in HISTORY_COLUMNS)
        for row in history
    ]
    atomic_write_text(run_dir / HISTORY_CSV, "\n".join(lines) + "\n")


class Trainer:
    """Owns one run: its data, model, optimiser, generator and position; `fit` runs the remaining schedule."""

    def __init__(self, cfg: DictConfig, run_dir: Path, parent_checkpoint: Path | None = None):
        self.cfg, self.run_dir = cfg, run_dir
        self.device = resolve_device(cfg.device)
        configure_torch(cfg.get("threads"))
        self.k = int(cfg.k)
        self.batch_size = int(cfg.schedule.batch_size)
        self.passes = [int(p) for p in cfg.schedule.passes]
        self.rates = [float(r) for r in cfg.schedule.learning_rates]
        self.objective = get_objective(cfg.model, self.k)

        splits = load_dataset(cfg.dataset.name, cfg.get("data_dir"), cfg.get("download", "ask"))
        n_train = cfg.schedule.get("train_examples") or len(splits.train)
        self.train_x = splits.train[:n_train].to(self.device)
        valid_generator = torch.Generator(self.device).manual_seed(int(cfg.eval.seed))
        self.valid_x = binarize(splits.valid.to(self.device), valid_generator)

        self.model = build_model(cfg.arch, training_pixel_means(splits.train), int(cfg.seed)).to(self.device)
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optim, self.rates[0])
        self.generator = torch.Generator(self.device).manual_seed(int(cfg.seed))
        self.position = Position()
        self.fingerprint = ckpt.fingerprint(cfg)
        self._restore(parent_checkpoint)
        self.compiled_step = self._compiled_step(compile_setting(cfg))

    def _compiled_step(self, choice: str) -> CompiledStep | None:
        """The compiled step when `compile` asks for it (auto: for runs long enough to repay the compile time,
        falling back to the plain step where torch.compile does not work); None for the plain step."""
        bound = log_weight_bound(self.cfg.model, self.k)
        if (
            bound is None
            or choice == "false"
            or (choice == "auto" and self.remaining_steps < COMPILE_MIN_STEPS)
        ):
            return None
        log.info("compiling the training step (seconds; compile=false skips this)")
        try:
            return CompiledStep(self.model, self.optimizer, bound, self.k, self.batch_size)
        except Exception as e:  # torch.compile needs a C++ compiler (CPU) or Triton (CUDA)
            reason = first_line(e)
            if choice == "auto":
                log.warning("torch.compile failed (%s); training with the plain step", reason)
                return None
            raise ConfigError(
                f"compile=true but torch.compile failed here: {reason}. Use compile=auto or false"
            ) from e

    @property
    def remaining_steps(self) -> int:
        pos = self.position
        done = (sum(self.passes[: pos.stage]) + pos.epoch_in_stage) * self.steps_per_epoch + pos.step_in_epoch
        return sum(self.passes) * self.steps_per_epoch - done

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_x) // self.batch_size

    @property
    def finished(self) -> bool:
        return self.position.stage >= len(self.passes)

    def _restore(self, parent_checkpoint: Path | None) -> None:
        path = self.run_dir / ckpt.CHECKPOINT_NAME
        if path.exists():
            state = ckpt.load_checkpoint(path, self.device)
            ckpt.check_fingerprint(path, state["config"], self.fingerprint)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            # generator states are CPU byte tensors, even a CUDA generator's
            self.generator.set_state(state["generator"].cpu())
            self.position = Position(**state["position"])
            log.info(
                "resuming %s at stage %d, pass %d",
                self.run_dir,
                self.position.stage,
                self.position.passes_done,
            )
        elif parent_checkpoint is not None:
            state = ckpt.load_checkpoint(parent_checkpoint, self.device)
            if state["config"]["arch"] != self.fingerprint["arch"]:
                raise ConfigError(f"{parent_checkpoint} has another architecture than this run")
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])  # Table 2 keeps the optimiser state
            log.info("starting from %s (model and optimiser state)", parent_checkpoint)

    def save(self) -> None:
        """Checkpoint the current state; refuses (NumericalError) if any parameter is not finite."""
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise NumericalError("non-finite parameters; the last good checkpoint is kept")
        ckpt.save_checkpoint(
            self.run_dir,
            {
                "config": self.fingerprint,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(),
                "position": asdict(self.position),
            },
        )

    def fit(self, checkpoint_minutes: float, progress: bool | None, resume_hint: str) -> Position:
        """Train to the end of the schedule, checkpointing at each stage end, every `checkpoint_minutes` and on
        SIGINT/SIGTERM (then raising Interrupted). Returns the final position."""
        pos = self.position
        total_steps = sum(self.passes) * self.steps_per_epoch
        bar = tqdm(
            total=total_steps,
            initial=total_steps - self.remaining_steps,
            disable=progress_disabled(progress),
            unit="step",
        )
        last_save = time.monotonic()
        with stop_on_signals() as stop, bar:
            while not self.finished:
                set_learning_rate(self.optimizer, self.rates[pos.stage])
                while pos.epoch_in_stage < self.passes[pos.stage]:
                    bar.set_description(
                        f"stage {pos.stage + 1}/{len(self.passes)} epoch {pos.epoch_in_stage + 1}/{self.passes[pos.stage]}"
                    )
                    last_save = self._run_epoch(bar, stop, checkpoint_minutes, last_save, resume_hint)
                    self._end_epoch()
                pos.stage, pos.epoch_in_stage = pos.stage + 1, 0
                self.save()
                last_save = time.monotonic()
            if stop:  # arrived after the last step (during the final validation or save): still stop here
                raise Interrupted(
                    f"stopped by {stop.signal_name} after training finished; checkpoint saved in "
                    f"{self.run_dir}. Resume with: {resume_hint}"
                )
        return pos

    def _run_epoch(self, bar, stop, checkpoint_minutes: float, last_save: float, resume_hint: str) -> float:
        pos, b = self.position, self.batch_size
        started, running, examples_at_start = (
            time.monotonic(),
            torch.zeros((), dtype=torch.float64),
            pos.epoch_examples,
        )
        for step in range(pos.step_in_epoch, self.steps_per_epoch):
            batch = self.train_x[step * b : (step + 1) * b]
            try:
                if self.compiled_step is not None:
                    running += self.compiled_step(batch, self.generator)
                else:
                    running += train_step(
                        self.model, self.optimizer, self.objective, batch, self.k, self.generator
                    )
            except NumericalError:
                raise NumericalError(
                    f"non-finite loss or gradient at stage {pos.stage + 1}, epoch {pos.epoch_in_stage + 1}, step "
                    f"{step + 1}; the last good checkpoint in {self.run_dir} (if any) is kept. Lower the learning rate "
                    "(schedule.learning_rates=[...]) or change the seed"
                ) from None
            pos.step_in_epoch, pos.epoch_examples = step + 1, pos.epoch_examples + b
            bar.update(1)
            now = time.monotonic()
            if bar.n % 50 == 0 and not bar.disable:
                rate = (pos.epoch_examples - examples_at_start) / max(now - started, 1e-9)
                mean = (pos.epoch_bound_sum + float(running)) / pos.epoch_examples
                bar.set_postfix(bound=f"{mean:.2f}", samples_s=f"{rate:.0f}", refresh=False)
            if stop or now - last_save >= 60 * checkpoint_minutes:
                pos.epoch_bound_sum += float(running)
                running.zero_()
                pos.train_seconds += now - started
                started = now
                self.save()
                last_save = now
                if stop:
                    raise Interrupted(
                        f"stopped by {stop.signal_name} at stage {pos.stage + 1}, epoch {pos.epoch_in_stage + 1}, "
                        f"step {step + 1}; checkpoint saved in {self.run_dir}. Resume with: {resume_hint}"
                    )
        pos.epoch_bound_sum += float(running)
        pos.train_seconds += time.monotonic() - started
        return last_save

    def _end_epoch(self) -> None:
        pos = self.position
        valid = mean_bound(self.model, self.objective, self.valid_x, self.k, int(self.cfg.eval.seed), 100)
        train_bound = pos.epoch_bound_sum / max(pos.epoch_examples, 1)
        if not (math.isfinite(train_bound) and math.isfinite(valid)):
            raise NumericalError(
                f"non-finite bound after epoch {pos.passes_done + 1}; the last good checkpoint is kept"
            )
        pos.passes_done += 1
        pos.history.append(
            {
                "stage": pos.stage + 1,
                "epoch": pos.epoch_in_stage + 1,
                "passes_done": pos.passes_done,
                "learning_rate": self.rates[pos.stage],
                "train_bound": train_bound,
                "valid_bound": valid,
                "seconds": round(pos.train_seconds, 3),
            }
        )
        log.info(
            "stage %d epoch %d: train bound %.3f, valid bound %.3f (k=%d)",
            pos.stage + 1,
            pos.epoch_in_stage + 1,
            train_bound,
            valid,
            self.k,
        )
        write_history(self.run_dir, pos.history)
        pos.epoch_in_stage += 1
        pos.step_in_epoch, pos.epoch_bound_sum, pos.epoch_examples = 0, 0.0, 0


def check_resumable(run_dir: Path, cfg: DictConfig) -> None:
    """Refuse (RunError) a run directory whose checkpoint belongs to another configuration, before anything in
    it is touched."""
    path = run_dir / ckpt.CHECKPOINT_NAME
    if path.exists():
        ckpt.check_fingerprint(path, ckpt.load_checkpoint(path)["config"], ckpt.fingerprint(cfg))


def run_training(
    cfg: DictConfig, run_dir: Path, resume_hint: str, parent_checkpoint: Path | None = None
) -> Trainer:
    """Train (or resume, or skip if finished) the run in run_dir; records config, status and training metrics."""
    validate_config(cfg)
    check_resumable(run_dir, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob(".*.tmp"):  # left by a process killed in the middle of an atomic write
        stale.unlink(missing_ok=True)
    atomic_write_text(run_dir / CONFIG_NAME, OmegaConf.to_yaml(cfg, resolve=True))
    record_metrics(run_dir, {"run": run_summary(cfg)})
    try:
        trainer = Trainer(cfg, run_dir, parent_checkpoint)
        if trainer.finished:
            log.info("%s has finished its schedule; not training again", run_dir)
            write_status(run_dir, "done")  # (it may have been stopped after its last step)
            return trainer
        write_status(run_dir, "running")
        trainer.fit(float(cfg.checkpoint_minutes), progress_setting(cfg), resume_hint)
    except Interrupted as e:
        write_status(run_dir, "interrupted", str(e))
        raise
    except Exception as e:
        write_status(run_dir, "failed", str(e).splitlines()[0] if str(e) else type(e).__name__)
        raise
    last = trainer.position.history[-1] if trainer.position.history else {}
    record_metrics(
        run_dir,
        {
            "train": {
                "passes_done": trainer.position.passes_done,
                "seconds": round(trainer.position.train_seconds, 2),
                "final_train_bound": last.get("train_bound"),
                "final_valid_bound": last.get("valid_bound"),
            }
        },
    )
    write_status(run_dir, "done")
    return trainer
