"""The documentation's "Extending iwae" examples (docs/extending.md) run as written: a new objective and a new
dataset, one declaration each."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from iwae_cli.core.objective_registry import LOG_WEIGHT_BOUNDS, OBJECTIVES
from iwae_cli.specs.run import objective_spec

PAGE = Path(__file__).resolve().parents[2] / "docs" / "extending.md"


def blocks(section: str, language: str) -> list[str]:
    """The ```language code blocks of the page's section headed `section` (up to the next heading)."""
    text = PAGE.read_text()
    start = text.index(section)
    end = re.search(r"\n## ", text[start + len(section) :])  # the next section (a "# " line may be a comment)
    body = text[start : start + len(section) + (end.start() if end else len(text))]
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.S)


@pytest.fixture
def tempered():
    """The page's objective, declared for one test and removed after it."""
    (code,) = blocks("## A new objective", "python")
    exec(compile(code, "docs/extending.md", "exec"), {})
    yield OBJECTIVES["tempered"]
    OBJECTIVES.pop("tempered")
    LOG_WEIGHT_BOUNDS.pop("tempered")


def test_the_documented_objective_is_one_declaration_and_its_yaml(tempered) -> None:
    (config_text,) = blocks("## A new objective", "yaml")
    config = OmegaConf.create(yaml.safe_load(config_text))
    assert config.name == "tempered" and set(config) - {"name"} == set(tempered.parameters)
    log_w = torch.randn(7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    bound = objective_spec(config, 7, "sum").log_weight_bound()  # a bound of the log weights: the compiled step can train it
    l_k = torch.logsumexp(log_w, 0) - torch.log(torch.tensor(7.0, dtype=torch.float64))
    assert (bound(log_w) <= l_k + 1e-12).all() and (bound(log_w) >= log_w.mean(0) - 1e-12).all()
    assert callable(objective_spec(config, 7, "sum").build())
    with pytest.raises(Exception, match="model.temperature must be >= 1"):
        objective_spec(OmegaConf.create({"name": "tempered", "temperature": 0.5}), 7, "sum").build()
    with pytest.raises(Exception, match="has no parameter model.alpha"):
        objective_spec(OmegaConf.create({"name": "tempered", "alpha": 0.5}), 7, "sum").build()


def test_the_documented_dataset_is_one_declaration() -> None:
    (code,) = blocks("## A new dataset", "python")
    namespace: dict = {}
    exec(compile(code, "docs/extending.md", "exec"), namespace)
    spec = namespace["KMNIST"]
    assert spec.name == "kmnist" and spec.n_pixels == 784 and spec.binarization == "dynamic"
    assert spec.required == ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")
    assert spec.train_examples(holdout=True) == 59_600 and spec.train_examples(holdout=False) == 60_000
    assert all(f.urls[0].endswith(f.name) for f in spec.files)
