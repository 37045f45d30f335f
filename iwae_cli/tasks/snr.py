"""`iwae grad-snr`: the gradient SNR of a trained run (iwae_cli.evaluation.snr), written beside it."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from iwae_cli.core.atomic import atomic_write_text
from iwae_cli.data.loading import load_split
from iwae_cli.evaluation.snr import measure_snr
from iwae_cli.reports.evaluation_plots import plot_snr
from iwae_cli.specs.evaluation import snr_spec
from iwae_cli.specs.saved_run import load_named_run
from iwae_cli.tasks.job import user_facing


@user_facing
def grad_snr_task(cfg: DictConfig) -> dict[str, Any]:
    """SNR of encoder and decoder gradients for each objective and k; writes grad_snr.csv and grad_snr.png."""
    spec = snr_spec(cfg)
    run = load_named_run(cfg)
    images = load_split(run.config.dataset.name, cfg.get("data_dir"), cfg.get("download", "auto"), "train", spec.examples)
    df = measure_snr(run.model, images, spec)
    atomic_write_text(run.path / "grad_snr.csv", df.to_csv(index=False))
    plot_snr(df, run.path / "grad_snr.png")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nwritten: {run.path / 'grad_snr.csv'} and grad_snr.png")
    return {"rows": df.to_dict("records")}
