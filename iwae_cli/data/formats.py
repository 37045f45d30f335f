"""Reading the registered file formats into float32 arrays [N, pixels] with intensities in [0, 1].

One reader per family of datasets (registry.py names it in each declaration): IDX (MNIST, Fashion-MNIST),
MATLAB (OMNIGLOT's chardata.mat, as the authors' code reads it) and Larochelle's .amat text (binarized MNIST).
Every expected problem (a truncated, malformed or unreadable file) raises :class:`DataError` with a one-line
message that names the file and the fix.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from iwae_cli.data.spec import DatasetSpec, Parts
from iwae_cli.errors import DataError

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions


def idx_parts(spec: DatasetSpec, folder: Path) -> Parts:
    train, test = (_read_idx_images(spec, spec.path(folder, spec.split_files[s])) for s in ("train", "test"))
    return Parts(train=train, test=test)


def amat_parts(spec: DatasetSpec, folder: Path) -> Parts:
    train, valid, test = (
        _read_amat(spec, spec.path(folder, spec.split_files[s])) for s in ("train", "valid", "test")
    )
    return Parts(train=train, valid=valid, test=test)


def omniglot_parts(spec: DatasetSpec, folder: Path) -> Parts:
    path = spec.path(folder, spec.split_files["train"])
    mat = _read_mat(spec, path)
    return Parts(
        train=_omniglot_images(spec, path, mat, "data"), test=_omniglot_images(spec, path, mat, "testdata")
    )


def _fix(spec: DatasetSpec) -> str:
    return f"re-download with `iwae data download {spec.name}`"


def _brief(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _read_bytes(spec: DatasetSpec, path: Path) -> bytes:
    """The file's bytes, decompressed when its name ends in .gz."""
    try:
        if path.suffix != ".gz":
            return path.read_bytes()
        with gzip.open(path, "rb") as f:
            return f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        # EOFError: a truncated download; BadGzipFile: not gzip at all, or a CRC/length mismatch
        raise DataError(f"{path} is not a complete gzip file ({_brief(e)}): {_fix(spec)}") from None
    except OSError as e:
        raise DataError(
            f"cannot read {path}: {e.strerror or e}; check its permissions or {_fix(spec)}"
        ) from None


# ------------------------------------------------------------------------------------------------------ IDX


def _read_idx_images(spec: DatasetSpec, path: Path) -> np.ndarray:
    fix, raw = _fix(spec), _read_bytes(spec, path)
    if len(raw) < 16:
        raise DataError(f"{path} is not an IDX image file (only {len(raw)} bytes after decompression): {fix}")
    magic, n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in range(0, 16, 4))
    if magic != IDX_IMAGES_MAGIC:
        raise DataError(
            f"{path} is not an IDX image file (magic number {magic:#010x}, expected 0x00000803): {fix}"
        )
    if (rows, cols) != spec.image_shape:
        raise DataError(
            f"{path} holds {rows}x{cols} images, expected {spec.image_shape[0]}x{spec.image_shape[1]}: {fix}"
        )
    expected = 16 + n * spec.n_pixels
    if len(raw) != expected:
        raise DataError(f"{path} has {len(raw)} bytes after decompression, its header says {expected}: {fix}")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, spec.n_pixels)
    # float32 division gives, for all 256 byte values, the same float32 as the authors' float64
    # (bytes / 255.0).astype(float32), without a 376 MB float64 temporary for the training set.
    images = pixels.astype(np.float32)
    images /= np.float32(255.0)
    return images


# ---------------------------------------------------------------------------------------------------- .amat


def _read_amat(spec: DatasetSpec, path: Path) -> np.ndarray:
    """Larochelle's format: one image a line, its pixels as single "0"/"1" characters separated by spaces.

    Every value is one character, so a line is exactly 2 * pixels bytes and the values are its even bytes;
    reading it as a byte matrix is ~100x faster than np.loadtxt on the 78 MB training file.
    """
    fix, raw = _fix(spec), _read_bytes(spec, path)
    width = 2 * spec.n_pixels
    if not raw or len(raw) % width:
        raise DataError(
            f"{path} is not a binarized MNIST .amat file ({len(raw)} bytes, not whole lines of "
            f"{spec.n_pixels} space-separated 0/1 values): {fix}"
        )
    lines = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width)
    separators, values = lines[:, 1::2], lines[:, 0::2]
    if not ((separators[:, :-1] == ord(" ")).all() and (separators[:, -1] == ord("\n")).all()):
        raise DataError(
            f"{path} is not a binarized MNIST .amat file (a line is not {spec.n_pixels} values): {fix}"
        )
    if not np.isin(values, (ord("0"), ord("1"))).all():
        raise DataError(f"{path} has values other than 0 and 1: {fix}")
    return (values - ord("0")).astype(np.float32)


# ------------------------------------------------------------------------------------------------- OMNIGLOT


def _read_mat(spec: DatasetSpec, path: Path) -> dict:
    import scipy.io  # scipy is slow to import; only OMNIGLOT needs it

    try:
        return scipy.io.loadmat(path)
    except Exception as e:  # scipy raises ValueError, MatReadError, NotImplementedError (v7.3), OSError, ...
        raise DataError(f"{path} is not a readable MATLAB file ({_brief(e)}): {_fix(spec)}") from None


def _omniglot_images(spec: DatasetSpec, path: Path, mat: dict, key: str) -> np.ndarray:
    """Check ``mat[key]`` (pixels x N in [0, 1]); return float32 [N, pixels], row-major upright images."""
    fix, pixels = _fix(spec), spec.n_pixels
    if key not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path} has no variable {key!r} (found: {', '.join(found) or 'none'}): {fix}")
    arr = mat[key]
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.shape[0] != pixels:
        shape = getattr(arr, "shape", type(arr).__name__)
        raise DataError(
            f"{path}: {key!r} has shape {shape}, expected {pixels} x N (one image per column): {fix}"
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        raise DataError(f"{path}: {key!r} has dtype {arr.dtype}, expected real numbers in [0, 1]: {fix}")
    arr = arr.astype(np.float32)
    if arr.size and not (np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0):
        raise DataError(
            f"{path}: {key!r} has values outside [0, 1] (min {arr.min()}, max {arr.max()}): {fix}"
        )
    # As in the authors' code: each column is an image stored in Fortran (column-major) order. Reading it that
    # way and flattening in C order makes a row-major view of a row the upright image.
    images = arr.T.reshape((-1, *spec.image_shape), order="F")
    return np.ascontiguousarray(images.reshape(-1, pixels))
