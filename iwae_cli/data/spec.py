"""What a dataset is: its files (RemoteFile) and its declaration (DatasetSpec), and the arrays its files hold
(Parts).

They live apart from the declarations (registry.py) and the readers (formats.py) because each of those needs
them: a declaration names its reader, and a reader reads the declaration, so defining DatasetSpec in either
would make the two import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class RemoteFile:
    """A data file: its name in the dataset folder, its checksums, the URLs to fetch it from (in order) and its
    size in bytes (None where unknown; only used to tell the user what a download costs).

    ``also`` lists other accepted forms of the same file (e.g. gzipped), each with its own checksums: one of
    them present on disk is used as it is; a download always fetches this canonical form.
    """

    name: str
    md5: str
    sha256: str | None
    urls: tuple[str, ...]
    size: int | None = None
    also: tuple[RemoteFile, ...] = ()

    def locate(self, folder: Path) -> RemoteFile:
        """The form of this file present in ``folder`` (the canonical one first), else the canonical one."""
        return next((form for form in (self, *self.also) if (folder / form.name).is_file()), self)


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the project knows about one dataset.

    ``split_files`` maps "train", "test" (and "valid" where the dataset ships its own validation split) to the
    canonical name of the file that holds it; ``read`` turns the folder into arrays (formats.py). Without
    a "valid" file, holdout=True holds out the last ``n_valid`` training images (after a shuffle seeded with
    ``shuffle_seed``, if any), as the authors' code does. ``binarization`` is "dynamic" (each pass draws
    pixels ~ Bernoulli(intensity)) or "fixed" (the files hold 0/1 images: never resampled).
    """

    name: str
    title: str  # how messages name it
    files: tuple[RemoteFile, ...]  # what `iwae data download` fetches and `iwae data verify` checks
    split_files: dict[str, str]
    read: Callable[[DatasetSpec, Path], Parts]
    train_size: int  # images in the training file (the projection in `iwae bench`)
    image_shape: tuple[int, int] = (28, 28)
    binarization: Literal["dynamic", "fixed"] = "dynamic"
    n_valid: int = 0
    shuffle_seed: int | None = None

    @property
    def n_pixels(self) -> int:
        """The model's input size."""
        return self.image_shape[0] * self.image_shape[1]

    @property
    def required(self) -> tuple[str, ...]:
        """The files loading needs (labels are fetched with the images but never read)."""
        return tuple(dict.fromkeys(self.split_files.values()))

    def train_examples(self, holdout: bool = True) -> int:
        """Images that train under holdout=True (the authors' code) or False (the paper's text)."""
        if "valid" in self.split_files:  # its own validation file joins the training set without holdout
            return self.train_size + (0 if holdout else self.n_valid)
        return self.train_size - (self.n_valid if holdout else 0)

    def remote(self, name: str) -> RemoteFile:
        return next(f for f in self.files if f.name == name)

    def path(self, folder: Path, name: str) -> Path:
        """Where the file ``name`` is read from: the form of it present in ``folder``."""
        return folder / self.remote(name).locate(folder).name


@dataclass(frozen=True)
class Parts:
    """The arrays a dataset's files hold; ``valid`` only where the dataset ships its own validation split."""

    train: np.ndarray
    test: np.ndarray
    valid: np.ndarray | None = None
