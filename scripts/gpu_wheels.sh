#!/usr/bin/env bash
# Prepare what scripts/gpu_check.sh needs on a GPU machine that has a CUDA PyTorch but no package index:
#   .whl/       wheels of the packages such a machine lacks (hydra-core, omegaconf and theirs, platformdirs,
#               the joblib launcher), for its Python (default 3.12; GPU_PYTHON_VERSION=3.11 ...)
#   .gpu_data/  MNIST, copied from $IWAE_DATA_DIR or the user cache (`iwae data download mnist` fetches it)
# Both folders are git-ignored. Run it where pip reaches PyPI, then copy the repository with them to the GPU box.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VERSION=${GPU_PYTHON_VERSION:-3.12}
rm -rf .whl && mkdir -p .whl
# pure-Python wheels; antlr4-python3-runtime 4.9.3 (what omegaconf 2.3 pins) is published as a source
# archive only, so it is built into a wheel here
$PY -m pip download --quiet --no-deps --only-binary=:all: --python-version "$VERSION" --implementation py \
    -d .whl "hydra-core>=1.3.2,<1.4" "omegaconf>=2.3,<2.4" platformdirs "hydra-joblib-launcher>=1.2"
$PY -m pip wheel --quiet --no-deps -w .whl antlr4-python3-runtime==4.9.3
DATA=$($PY -c "from iwae_cli.data.loading import resolve_data_dir; print(resolve_data_dir(None))")
mkdir -p .gpu_data/mnist
cp "$DATA"/mnist/*.gz .gpu_data/mnist/
ls -la .whl .gpu_data/mnist
