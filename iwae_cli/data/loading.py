"""Loading the registered datasets (registry.py) as the authors' code does (yburda/iwae, ``datasets.py``).

Each dataset lives in its own folder below the data directory (see :func:`resolve_data_dir`), e.g.::

    mnist/train-images-idx3-ubyte.gz   omniglot/chardata.mat   binarized_mnist/binarized_mnist_train.amat[.gz]

Every expected problem (missing, truncated or malformed files, an unregistered name) raises :class:`DataError`
with a one-line message that names the problem and the fix.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs
import torch

from iwae_cli.core.noise import FixedBinary
from iwae_cli.core.setting_names import DOWNLOAD_MODES

# the module, not its names: tests stand in for download_dataset on it
from iwae_cli.data import download as downloads
from iwae_cli.data.registry import DATASET_NAMES, get_dataset
from iwae_cli.data.spec import DatasetSpec
from iwae_cli.errors import ConfigError, DataError

__all__ = ["DATASET_NAMES", "DOWNLOAD_MODES", "Splits", "ensure_files", "load_dataset", "load_split",
           "missing_files", "resolve_data_dir", "training_pixel_means"]


@dataclass(frozen=True)
class Splits:
    """The three subsets of a dataset: float32 tensors of shape [N, pixels] with intensities in [0, 1]
    (:class:`FixedBinary` 0/1 images for a dataset with fixed binarisation)."""

    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor


def resolve_data_dir(configured: str | os.PathLike | None) -> Path:
    """Return the data directory: ``configured`` if given, else ``$IWAE_DATA_DIR``, else the user cache.

    The user cache is ``platformdirs.user_cache_dir("iwae")/data`` (``~/.cache/iwae/data`` on Linux). The
    result is absolute with ``~`` expanded; it need not exist.
    """
    if configured is not None and str(configured) != "":
        chosen = Path(configured)
    elif os.environ.get("IWAE_DATA_DIR"):
        chosen = Path(os.environ["IWAE_DATA_DIR"])
    else:
        chosen = Path(platformdirs.user_cache_dir("iwae")) / "data"
    return Path(os.path.abspath(chosen.expanduser()))


def load_dataset(
    name: str, data_dir: str | os.PathLike | None, download: str = "auto", *, holdout: bool | int = True
) -> Splits:
    """Load the registered dataset ``name`` from ``data_dir`` (resolved with :func:`resolve_data_dir`).

    ``download`` says what to do when files are missing: "auto" (or its alias "always") downloads public files
    after saying so in one line on stderr, "never" raises :class:`DataError`, and "ask" asks on a terminal
    (y/N) and otherwise behaves like "never".

    ``holdout=True`` splits as the authors' code does: MNIST (and Fashion-MNIST) validate on the last 400
    training images, OMNIGLOT on the last 1,345 after a seeded shuffle; binarized MNIST on its own validation
    file. ``holdout=False`` (or 0) follows the paper's text: the whole training split trains (in the same order;
    binarized MNIST's validation images after its training images) and ``valid`` is empty (shape [0, pixels]).
    A number N holds out the last N training images instead (a dataset without a validation file of its own).
    """
    spec = get_dataset(name)
    held_out = held_out_count(spec, holdout)
    folder = ensure_files(spec.name, data_dir, download)
    return _splits(spec, folder, spec.read(spec, folder), held_out)


def held_out_count(spec: DatasetSpec, holdout: bool | int) -> int:
    """How many training images `holdout` holds out of `spec`'s (ConfigError where it cannot)."""
    if isinstance(holdout, bool):
        return spec.n_valid if holdout else 0
    own_file = "valid" in spec.split_files
    if own_file and holdout not in (0, spec.n_valid) or not own_file and not 0 <= holdout < spec.train_size:
        allowed = "true or false (its own validation file)" if own_file else f"0 to {spec.train_size - 1}"
        raise ConfigError(f"{spec.title} can hold out {allowed} training images, not holdout={holdout}")
    return holdout


def ensure_files(name: str, data_dir: str | os.PathLike | None, download: str = "auto") -> Path:
    """The dataset's folder, after downloading missing files where ``download`` allows (else DataError)."""
    name = get_dataset(name).name
    if download not in DOWNLOAD_MODES:
        raise ConfigError(f"unknown download mode {download!r}: use one of {', '.join(DOWNLOAD_MODES)}")
    root = resolve_data_dir(data_dir)
    missing = missing_files(name, data_dir)
    if missing:
        _obtain(name, root, missing, download)
    return root / name


def missing_files(name: str, data_dir: str | os.PathLike | None) -> list[str]:
    """The files `load_dataset` needs for ``name`` that are not in the data directory."""
    spec = get_dataset(name)
    folder = resolve_data_dir(data_dir) / spec.name
    return [f for f in spec.required if not spec.path(folder, f).is_file()]


def load_split(
    name: str,
    data_dir: str | os.PathLike | None,
    download: str,
    split: str,
    examples: int | None = None,
    holdout: bool | int = True,
) -> torch.Tensor:
    """One split ("train", "valid" or "test") of a dataset, optionally its first `examples` images; `holdout` as
    load_dataset takes it."""
    data = getattr(load_dataset(name, data_dir, download, holdout=holdout), split)
    return data if examples is None else data[:examples]


def training_pixel_means(train: torch.Tensor) -> torch.Tensor:
    """Mean intensity of each pixel over the training examples, clipped to [0.001, 0.999].

    The clipping keeps the logit finite: the authors initialise the decoder's output bias to logit(mean).
    """
    return train.as_subclass(torch.Tensor).mean(dim=0).clamp(0.001, 0.999)


# ----------------------------------------------------------------------------------------------------------
# missing files


def _obtain(name: str, root: Path, missing: list[str], download: str) -> None:
    """Download the missing files of ``name`` if ``download`` allows it, else raise DataError."""
    folder, title = root / name, get_dataset(name).title
    not_found = f"{title} not found in {folder} (missing {', '.join(missing)})"
    fix = (
        f"run `iwae data download {name}`, allow it with download=auto, or set IWAE_DATA_DIR / data_dir=... "
        f"to a folder that holds {name}/"
    )
    if download == "never" or not downloads.is_public(name):
        raise DataError(f"{not_found}: {fix}")
    if download == "ask":
        if sys.stdin is None or not sys.stdin.isatty():
            raise DataError(f"{not_found}: {fix}")
        if not confirm(f"{title} is not in {folder}. Download it now?"):
            raise DataError(f"{not_found}: {fix}")
    _download(name, root, not_found)


def confirm(question: str) -> bool:
    """A y/N question on the terminal; no (the default) unless the answer starts with y."""
    try:
        answer = input(f"{question} [y/N]: ")
    except EOFError:
        return False
    return answer.strip().lower().startswith("y")


def _download(name: str, root: Path, not_found: str) -> None:
    """Fetch ``name`` into ``root/name`` after one line on stderr; a failure is one DataError line that leaves
    no empty folder behind (a table lists it as the reason its cells did not run)."""
    # stderr, not the log: a table's stdout stays the table, and the line shows whatever the logging setup
    print(f"downloading {downloads.describe_download(name, root)}", file=sys.stderr, flush=True)
    created = [p for p in (root / name, root) if not p.exists()]
    try:
        downloads.download_dataset(name, root, progress=sys.stderr.isatty())
    except DataError as e:
        for path in created:
            try:
                path.rmdir()  # only ever empty here: download_dataset removes its partial files
            except OSError:
                pass
        raise DataError(f"{not_found}, and downloading it failed: {e}") from None


# ----------------------------------------------------------------------------------------------------------
# splits


def _splits(spec: DatasetSpec, folder: Path, parts, held_out: int) -> Splits:
    """Splits from the arrays of the files: the last `held_out` training images validate (a dataset's own
    validation file where it has one), then the fixed-binarisation mark."""
    if parts.valid is not None:  # its own validation file
        train, valid = parts.train, parts.valid
        if not held_out:
            train, valid = np.concatenate([train, valid]), valid[:0]
    else:
        train = parts.train
        if spec.shuffle_seed is not None:
            train = train[np.random.RandomState(seed=spec.shuffle_seed).permutation(len(train))]
        if len(train) <= max(held_out, spec.n_valid):
            raise DataError(
                f"{spec.path(folder, spec.split_files['train'])} holds only {len(train)} images (expected "
                f"{spec.train_size}, more than the {max(held_out, spec.n_valid)} held out for validation): "
                f"re-download with `iwae data download {spec.name}`"
            )
        # without holdout the whole training split trains and the validation set is empty
        split = len(train) - held_out
        train, valid = train[:split], train[split:]
    tensors = (torch.from_numpy(np.ascontiguousarray(a)) for a in (train, valid, parts.test))
    if spec.binarization == "fixed":
        tensors = (t.as_subclass(FixedBinary) for t in tensors)
    return Splits(*tensors)
