"""The dataset registry: complete declarations (each with its conf/dataset/<name>.yaml and back), one-line
refusals of unregistered names everywhere, and the sizes the model, plots and bench take from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from iwae_cli.cli.data import data_app
from iwae_cli.core.model import Architecture, build_model
from iwae_cli.data.download import describe_download, download_dataset, verify_dataset
from iwae_cli.data.loading import ensure_files, load_dataset, missing_files
from iwae_cli.data.registry import DATASET_NAMES, DATASETS, get_dataset
from iwae_cli.errors import DataError
from iwae_cli.reports import bench, projection
from iwae_cli.reports.plots import image_grid

CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset"
REGISTERED = "mnist, omniglot, binarized_mnist, fashion_mnist"


def test_every_registered_dataset_has_its_config_and_back() -> None:
    configs = {path.stem: yaml.safe_load(path.read_text()) for path in CONF.glob("*.yaml")}
    assert set(configs) == set(DATASET_NAMES)
    for name, config in configs.items():
        assert config == {"name": name}


def test_declarations_are_complete() -> None:
    for name, spec in DATASETS.items():
        assert spec.name == name and spec.title
        assert spec.binarization in ("dynamic", "fixed")
        assert {"train", "test"} <= set(spec.split_files) <= {"train", "valid", "test"}
        names = [f.name for f in spec.files]
        assert set(spec.required) <= set(names), name  # every file loading needs is downloaded and verified
        assert all(f.urls and len(f.md5) == 32 for f in spec.files), name
        assert 0 < spec.train_examples() <= spec.train_examples(holdout=False)


@pytest.mark.parametrize(
    "call",
    [
        lambda root: load_dataset("foo", root, download="never"),
        lambda root: ensure_files("foo", root, download="never"),
        lambda root: missing_files("foo", root),
        lambda root: download_dataset("foo", root, progress=False),
        lambda root: verify_dataset("foo", root),
        lambda root: describe_download("foo", root),
    ],
)
def test_an_unregistered_name_is_one_line_naming_the_registered_ones(call, tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        call(tmp_path)
    assert str(e.value) == f"unknown dataset 'foo': the registered datasets are {REGISTERED}"
    assert not (tmp_path / "foo").exists()


def test_iwae_data_refuses_an_unregistered_name(tmp_path: Path) -> None:
    for command in ("download", "verify"):
        result = CliRunner().invoke(data_app, [command, "foo", "--data-dir", str(tmp_path)])
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr == f"error: unknown dataset 'foo': use one of {REGISTERED} or all\n"


def test_iwae_data_help_lists_every_registered_dataset() -> None:
    result = CliRunner().invoke(data_app, ["download", "--help"])
    assert all(name in result.output for name in DATASET_NAMES)


def test_the_models_input_size_is_the_datasets() -> None:
    assert {name: spec.n_pixels for name, spec in DATASETS.items()} == dict.fromkeys(DATASET_NAMES, 784)
    for x_dim in (get_dataset("mnist").n_pixels, 12):
        model = build_model(Architecture((3,), ((8,),), ((8,),), x_dim), torch.full((x_dim,), 0.2), seed=0)
        assert model.arch.x_dim == x_dim and model.encoders[0].body[0].in_features == x_dim


def test_bench_projects_from_the_declared_training_sets() -> None:
    # the code's holdout: MNIST 60,000 - 400, OMNIGLOT 24,345 - 1,345
    assert projection.TABLE1_TRAIN == (59_600, 23_000)
    assert bench.X_DIM == 784
    assert (get_dataset("mnist").train_examples(holdout=False), get_dataset("binarized_mnist").train_examples()) == (
        60_000, 50_000)


def test_image_grid_tiles_with_the_image_shape() -> None:
    images = torch.arange(6 * 2 * 3, dtype=torch.float32).reshape(6, 6)  # six 2x3 images
    grid = image_grid(images, rows=2, image_shape=(2, 3))
    assert grid.shape == (4, 9)
    assert torch.equal(grid[:2, 3:6], images[1].reshape(2, 3))  # row 0, column 1
    assert torch.equal(grid[2:, :3], images[3].reshape(2, 3))  # row 1, column 0
