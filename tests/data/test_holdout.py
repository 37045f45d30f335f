"""load_dataset(holdout=...): the authors' code holds out a validation set (True); the paper's text trains on
the whole training split (False)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from iwae_cli.data.loading import Splits, load_dataset


@pytest.fixture(scope="module")
def mnist_both(mnist_data_dir: Path) -> tuple[Splits, Splits]:
    return (load_dataset("mnist", mnist_data_dir, download="never"),
            load_dataset("mnist", mnist_data_dir, download="never", holdout=False))


def assert_no_holdout(held: Splits, whole: Splits) -> None:
    assert whole.valid.shape == (0, 784) and whole.valid.dtype == torch.float32
    assert whole.train.dtype == torch.float32
    assert torch.equal(whole.train, torch.cat([held.train, held.valid]))  # the same images, the same order
    assert torch.equal(whole.test, held.test)


def test_mnist_holdout_is_the_default_and_the_authors_split(mnist_both: tuple[Splits, Splits]) -> None:
    held, _ = mnist_both
    assert (len(held.train), len(held.valid), len(held.test)) == (59_600, 400, 10_000)


def test_mnist_without_holdout_trains_on_all_60000(mnist_both: tuple[Splits, Splits]) -> None:
    held, whole = mnist_both
    assert (len(whole.train), len(whole.valid), len(whole.test)) == (60_000, 0, 10_000)
    assert_no_holdout(held, whole)


def test_omniglot_without_holdout_keeps_the_shuffle(tmp_path: Path) -> None:
    n_train, n_test = 1400, 3
    rng = np.random.default_rng(0)
    path = tmp_path / "omniglot" / "chardata.mat"
    path.parent.mkdir()
    scipy.io.savemat(path, {"data": rng.random((784, n_train)), "testdata": rng.random((784, n_test))})
    held = load_dataset("omniglot", tmp_path, download="never")
    whole = load_dataset("omniglot", tmp_path, download="never", holdout=False)
    assert (len(held.train), len(held.valid)) == (n_train - 1345, 1345)
    assert len(whole.train) == n_train
    assert_no_holdout(held, whole)


def test_a_number_holds_out_that_many_last_training_images(
    mnist_data_dir: Path, mnist_both: tuple[Splits, Splits]
) -> None:
    _, whole = mnist_both
    ten_k = load_dataset("mnist", mnist_data_dir, download="never", holdout=10_000)
    assert (len(ten_k.train), len(ten_k.valid)) == (50_000, 10_000)
    assert torch.equal(torch.cat([ten_k.train, ten_k.valid]), whole.train)  # the last 10,000, in order


@pytest.mark.parametrize("holdout", [60_000, -1])
def test_a_holdout_that_leaves_no_training_images_is_refused(mnist_data_dir: Path, holdout: int) -> None:
    from iwae_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="can hold out 0 to 59999 training images"):
        load_dataset("mnist", mnist_data_dir, download="never", holdout=holdout)
