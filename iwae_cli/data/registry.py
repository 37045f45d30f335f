"""The registered datasets: one declaration each, from which loading, downloading, `iwae data`, the model's
input size, the sample plots and `iwae bench` take what they need.

A new dataset is one `DatasetSpec` (spec.py) in `_SPECS` plus conf/dataset/<name>.yaml
(tests/data/test_dataset_registry.py checks that the two lists agree).
"""

from __future__ import annotations

from iwae_cli.data import formats
from iwae_cli.data.spec import DatasetSpec, RemoteFile
from iwae_cli.errors import DataError

_MNIST_BASES = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_IDX_SPLITS = {"train": "train-images-idx3-ubyte.gz", "test": "t10k-images-idx3-ubyte.gz"}


def _files(
    bases: tuple[str, ...], table: tuple[tuple[str, str, str | None, int | None], ...]
) -> tuple[RemoteFile, ...]:
    """RemoteFiles from (name, md5, sha256, size) rows, each fetched from ``base + name`` for every base."""
    return tuple(RemoteFile(n, md5, sha, tuple(b + n for b in bases), size) for n, md5, sha, size in table)


def _amat(split: str, md5: str, sha256: str, size: int, gz: tuple[str, str, int]) -> RemoteFile:
    """A binarized-MNIST file: Larochelle's plain text, also accepted gzipped (``gz``: md5, sha256, size)."""
    name = f"binarized_mnist_{split}.amat"
    url = f"http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/{name}"
    return RemoteFile(
        name, md5, sha256, (url,), size, also=(RemoteFile(name + ".gz", gz[0], gz[1], (), gz[2]),)
    )


_SPECS = (
    DatasetSpec(
        name="mnist",
        title="MNIST",
        # the canonical LeCun files (their MD5s are the ones torchvision checks)
        files=_files(
            _MNIST_BASES,
            (
                (
                    "train-images-idx3-ubyte.gz",
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                    9912422,
                ),
                (
                    "train-labels-idx1-ubyte.gz",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                    28881,
                ),
                (
                    "t10k-images-idx3-ubyte.gz",
                    "9fb629c4189551a2d022fa330f9573f3",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                    1648877,
                ),
                (
                    "t10k-labels-idx1-ubyte.gz",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                    4542,
                ),
            ),
        ),
        split_files=_IDX_SPLITS,
        read=formats.idx_parts,
        train_size=60_000,
        n_valid=400,  # the code holds out the last 400 training images, unshuffled
    ),
    DatasetSpec(
        name="omniglot",
        title="OMNIGLOT",
        files=(
            RemoteFile(
                "chardata.mat",
                "21ecaf34373511aa7691cf2e0802aa3d",
                None,  # no trusted SHA-256 is published; the MD5 is the one the authors' file has
                ("https://raw.githubusercontent.com/yburda/iwae/master/datasets/OMNIGLOT/chardata.mat",),
            ),
        ),
        split_files={"train": "chardata.mat", "test": "chardata.mat"},
        read=formats.omniglot_parts,
        train_size=24_345,
        n_valid=1_345,
        # the authors shuffle the training set once with np.random.RandomState(seed=123).permutation(n)
        shuffle_seed=123,
    ),
    DatasetSpec(
        name="binarized_mnist",
        title="binarized MNIST",
        # Larochelle's fixed binarisation; plain-text sha256/sizes as tensorflow_datasets publishes them
        files=(
            _amat(
                "train",
                "db28b1a6ae0fe70cbd3da91acf46e477",
                "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
                78_400_000,
                (
                    "55c6be0db63f47a228822edc21049d6f",
                    "af247bd6075cf9adc4715459dcd5f13eaa99a2c92d8d81379a05da94770b6c0e",
                    2_196_952,
                ),
            ),
            _amat(
                "valid",
                "bf37822a04e94123630de6a7dfd9c9ef",
                "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
                15_680_000,
                (
                    "bf325c5893052cb8b540dfeb3c0c6fbe",
                    "533b71bc0198f4d73c54ae5fe6c96fc08dc3cf1b3fae24c5521dbc0452507e38",
                    439_620,
                ),
            ),
            _amat(
                "test",
                "14e41ae11040adba6ab8cb291eda0dd8",
                "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
                15_680_000,
                (
                    "f7f18e7c5d551792f6aab10d62a7ea74",
                    "32a3c54d03504632bf9f131b4a148c7567aa6fc87da017049b044bdc14c2a0f2",
                    416_802,
                ),
            ),
        ),
        split_files={s: f"binarized_mnist_{s}.amat" for s in ("train", "valid", "test")},
        read=formats.amat_parts,
        train_size=50_000,
        binarization="fixed",
        n_valid=10_000,  # its own validation file
    ),
    DatasetSpec(
        name="fashion_mnist",
        title="Fashion-MNIST",
        # Zalando's files; only the MD5s of their README are published (no trusted SHA-256, no sizes)
        files=_files(
            ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
            (
                ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", None, None),
                ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", None, None),
                ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", None, None),
                ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", None, None),
            ),
        ),
        split_files=_IDX_SPLITS,
        read=formats.idx_parts,
        train_size=60_000,
        n_valid=400,  # MNIST's protocol: the last 400 training images validate under holdout=True
    ),
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}
DATASET_NAMES = tuple(DATASETS)


def get_dataset(name: str) -> DatasetSpec:
    """The declaration of ``name`` (any case); DataError naming the registered datasets if there is none."""
    try:
        return DATASETS[str(name).lower()]
    except KeyError:
        raise DataError(
            f"unknown dataset {name!r}: the registered datasets are {', '.join(DATASETS)}"
        ) from None
