"""Loading MNIST and OMNIGLOT as in the authors' code (yburda/iwae, ``datasets.py``).

Layout on disk, below the data directory (see :func:`resolve_data_dir`)::

    mnist/train-images-idx3-ubyte.gz   mnist/t10k-images-idx3-ubyte.gz   (+ the two label files)
    omniglot/chardata.mat

Every expected problem (missing, truncated or malformed files) raises :class:`DataError` with a one-line
message that names the file and the fix.
"""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs
import torch
import typer

from .errors import ConfigError, DataError

DATASET_NAMES = ("mnist", "omniglot")
DOWNLOAD_MODES = ("ask", "always", "never")

MNIST_TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
MNIST_TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
MNIST_N_VALID = 400  # the code holds out the last 400 training images, unshuffled
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions

OMNIGLOT_FILE = "chardata.mat"
OMNIGLOT_N_VALID = 1345
# The authors shuffle the OMNIGLOT training set once with np.random.RandomState(seed=123).permutation(n)
# before holding out the last 1,345 images; the same call gives the same split here.
OMNIGLOT_SHUFFLE_SEED = 123

_IMAGE_SIZE = 28
_N_PIXELS = _IMAGE_SIZE * _IMAGE_SIZE


@dataclass(frozen=True)
class Splits:
    """The three subsets of a dataset: float32 tensors of shape [N, 784] with intensities in [0, 1]."""

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


def load_dataset(name: str, data_dir: str | os.PathLike | None, download: str = "ask") -> Splits:
    """Load ``name`` ("mnist" or "omniglot") from ``data_dir`` (resolved with :func:`resolve_data_dir`).

    ``download`` says what to do when files are missing: "always" downloads them, "never" raises
    :class:`DataError`, and "ask" asks on a terminal (y/N) and otherwise behaves like "never".
    """
    name = _check_name(name)
    folder = ensure_files(name, data_dir, download)
    return _load_mnist(folder) if name == "mnist" else _load_omniglot(folder)


def ensure_files(name: str, data_dir: str | os.PathLike | None, download: str = "ask") -> Path:
    """The dataset's folder, after downloading missing files where ``download`` allows (else DataError)."""
    name = _check_name(name)
    if download not in DOWNLOAD_MODES:
        raise ConfigError(f"unknown download mode {download!r}: use one of {', '.join(DOWNLOAD_MODES)}")
    root = resolve_data_dir(data_dir)
    missing = missing_files(name, data_dir)
    if missing:
        _obtain(name, root, missing, download)
    return root / name


def missing_files(name: str, data_dir: str | os.PathLike | None) -> list[str]:
    """The files `load_dataset` needs for ``name`` that are not in the data directory."""
    folder = resolve_data_dir(data_dir) / _check_name(name)
    return [f for f in _required_files(_check_name(name)) if not (folder / f).is_file()]


def binarize(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Dynamic binarisation: each pixel becomes 1 with probability equal to its intensity.

    As in the authors' code, ``(uniform <= intensity)``; the uniforms come from ``generator``, which must live
    on ``x.device``. The result has the dtype of ``x``.
    """
    uniform = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (uniform <= x).to(x.dtype)


def training_pixel_means(train: torch.Tensor) -> torch.Tensor:
    """Mean intensity of each pixel over the training examples, clipped to [0.001, 0.999].

    The clipping keeps the logit finite: the authors initialise the decoder's output bias to logit(mean).
    """
    return train.mean(dim=0).clamp(0.001, 0.999)


# ----------------------------------------------------------------------------------------------------------
# missing files


def _check_name(name: str) -> str:
    key = str(name).lower()
    if key not in DATASET_NAMES:
        raise DataError(f"unknown dataset {name!r}: the known datasets are {', '.join(DATASET_NAMES)}")
    return key


def _required_files(name: str) -> tuple[str, ...]:
    # only the images are needed for training; the label files are downloaded too but never required
    return (MNIST_TRAIN_IMAGES, MNIST_TEST_IMAGES) if name == "mnist" else (OMNIGLOT_FILE,)


def _obtain(name: str, root: Path, missing: list[str], download: str) -> None:
    """Download the missing files of ``name`` if ``download`` allows it, else raise DataError."""
    folder = root / name
    not_found = DataError(
        f"{name.upper()} not found in {folder} (missing {', '.join(missing)}): "
        f"run `iwae data download {name}` or set IWAE_DATA_DIR / data_dir=... to a folder that holds {name}/"
    )
    if download == "never":
        raise not_found
    if download == "ask":
        if sys.stdin is None or not sys.stdin.isatty():
            raise not_found
        if not typer.confirm(f"{name.upper()} is not in {folder}. Download it now?", default=False):
            raise not_found
    from .download import download_dataset  # here, so importing datasets stays light

    download_dataset(name, root)


# ----------------------------------------------------------------------------------------------------------
# MNIST


def _load_mnist(folder: Path) -> Splits:
    train_all = _read_idx_images(folder / MNIST_TRAIN_IMAGES)
    test = _read_idx_images(folder / MNIST_TEST_IMAGES)
    if train_all.shape[0] <= MNIST_N_VALID:
        raise DataError(
            f"{folder / MNIST_TRAIN_IMAGES} holds only {train_all.shape[0]} images (expected 60000): "
            "re-download with `iwae data download mnist`"
        )
    train = torch.from_numpy(train_all)
    return Splits(train=train[:-MNIST_N_VALID], valid=train[-MNIST_N_VALID:], test=torch.from_numpy(test))


def _read_idx_images(path: Path) -> np.ndarray:
    """Read a gzipped IDX image file into a float32 array [N, 784] of intensities in [0, 1]."""
    fix = "re-download with `iwae data download mnist`"
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        # EOFError: a truncated download; BadGzipFile: not gzip at all, or a CRC/length mismatch
        raise DataError(f"{path} is not a complete gzip file ({_brief(e)}): {fix}") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}; check its permissions or {fix}") from None
    if len(raw) < 16:
        raise DataError(f"{path} is not an IDX image file (only {len(raw)} bytes after decompression): {fix}")
    magic, n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in range(0, 16, 4))
    if magic != IDX_IMAGES_MAGIC:
        raise DataError(
            f"{path} is not an IDX image file (magic number {magic:#010x}, expected 0x00000803): {fix}"
        )
    if (rows, cols) != (_IMAGE_SIZE, _IMAGE_SIZE):
        raise DataError(f"{path} holds {rows}x{cols} images, expected 28x28: {fix}")
    expected = 16 + n * _N_PIXELS
    if len(raw) != expected:
        raise DataError(f"{path} has {len(raw)} bytes after decompression, its header says {expected}: {fix}")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, _N_PIXELS)
    # float32 division gives, for all 256 byte values, the same float32 as the authors' float64
    # (bytes / 255.0).astype(float32), without a 376 MB float64 temporary for the training set.
    images = pixels.astype(np.float32)
    images /= np.float32(255.0)
    return images


def _brief(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# ----------------------------------------------------------------------------------------------------------
# OMNIGLOT


def _load_omniglot(folder: Path) -> Splits:
    path = folder / OMNIGLOT_FILE
    mat = _read_mat(path)
    train_all = _omniglot_images(path, mat, "data")
    test = _omniglot_images(path, mat, "testdata")
    if train_all.shape[0] <= OMNIGLOT_N_VALID:
        raise DataError(
            f"{path}: 'data' holds only {train_all.shape[0]} images, fewer than the {OMNIGLOT_N_VALID} "
            "held out for validation: re-download with `iwae data download omniglot`"
        )
    permutation = np.random.RandomState(seed=OMNIGLOT_SHUFFLE_SEED).permutation(train_all.shape[0])
    shuffled = torch.from_numpy(train_all[permutation])
    return Splits(
        train=shuffled[:-OMNIGLOT_N_VALID], valid=shuffled[-OMNIGLOT_N_VALID:], test=torch.from_numpy(test)
    )


def _read_mat(path: Path) -> dict:
    import scipy.io  # scipy is slow to import; only OMNIGLOT needs it

    try:
        return scipy.io.loadmat(path)
    except Exception as e:  # scipy raises ValueError, MatReadError, NotImplementedError (v7.3), OSError, ...
        raise DataError(
            f"{path} is not a readable MATLAB file ({_brief(e)}): "
            "re-download with `iwae data download omniglot`"
        ) from None


def _omniglot_images(path: Path, mat: dict, key: str) -> np.ndarray:
    """Check ``mat[key]`` (784 x N in [0, 1]); return it as float32 [N, 784], row-major upright images."""
    fix = "re-download with `iwae data download omniglot`"
    if key not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path} has no variable {key!r} (found: {', '.join(found) or 'none'}): {fix}")
    arr = mat[key]
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.shape[0] != _N_PIXELS:
        shape = getattr(arr, "shape", type(arr).__name__)
        raise DataError(f"{path}: {key!r} has shape {shape}, expected 784 x N (one image per column): {fix}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        raise DataError(f"{path}: {key!r} has dtype {arr.dtype}, expected real numbers in [0, 1]: {fix}")
    arr = arr.astype(np.float32)
    if arr.size and not (np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0):
        raise DataError(
            f"{path}: {key!r} has values outside [0, 1] (min {arr.min()}, max {arr.max()}): {fix}"
        )
    # As in the authors' code: each column is a 28x28 image stored in Fortran (column-major) order. Reading it
    # that way and flattening in C order makes a row-major 28x28 view of a row the upright image.
    images = arr.T.reshape((-1, _IMAGE_SIZE, _IMAGE_SIZE), order="F")
    return np.ascontiguousarray(images.reshape(-1, _N_PIXELS))
