"""Figures written into run and table directories as PNG, atomically (a reader never sees half a file), with
matplotlib set to draw into files only. Every figure is drawn by the reports (plots.py, evaluation_plots.py)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402

from iwae_cli.core.atomic import atomic_write  # noqa: E402

__all__ = ["plt", "save_figure"]


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Render to memory, then replace `path` atomically; closes the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))
