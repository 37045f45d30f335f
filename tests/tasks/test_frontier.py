"""`iwae frontier` end to end on real MNIST (tiny runs): each recipe's runs keep their pass marks, each mark is
scored on held-out images, the CSV and figure are written, and a second call trains and scores nothing again."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

TINY = (
    "frontier",
    "name=tiny",
    "cells=[{layers: 1, model: iwae, k: 2}]",
    "~recipes.medium",
    "~recipes.reference",
    "~recipes.fast",
    "+recipes.plain=['schedule=smoke']",
    "+recipes.cosine=['schedule=smoke','schedule.anneal=cosine']",
    "marks=[1]",
    "holdout=200",
    "valid_k=5",
    "valid_examples=50",
    "final_k=3",
    "progress=false",
)


def test_the_frontier_scores_each_recipes_marks_on_held_out_images(iwae_cli, output_root: Path) -> None:
    printed = iwae_cli(*TINY).stdout
    out = output_root / "frontier" / "tiny"
    df = pd.read_csv(out / "frontier.csv")
    assert (out / "frontier.png").stat().st_size > 0
    assert sorted(set(df.recipe)) == ["cosine", "plain"]
    # the smoke schedule has 2 passes: mark 1 and the last pass
    assert sorted(df[df.recipe == "plain"].passes) == [1, 2] and (df.k == 5).all() and (df.n == 50).all()
    assert (df.train_seconds > 0).all() and df.valid_nll.between(100, 600).all()
    runs = {Path(r) for r in df.run}
    assert all("-text-holdout_200-" in r.name for r in runs)  # the held-out images are in its identity
    cosine = next(r for r in runs if "anneal_cosine" in r.name)
    rates = [line.split(",")[3] for line in (cosine / "train_log.csv").read_text().splitlines()[1:]]
    assert float(rates[0]) < 1e-3  # annealed within the first stage
    # each run's last model scored again on the whole validation split (all 200 held-out images, final_k), and
    # the recipes listed best first by it
    finals = pd.read_csv(out / "frontier_final.csv")
    # its Markdown for the documentation: a row per recipe, the best first, the numbers the CSV's
    rows = [line for line in (out / "frontier_final.md").read_text().splitlines() if line.startswith("| L1-")]
    best_row = finals.sort_values("valid_nll").iloc[0]
    assert len(rows) == 2 and f"| {best_row.recipe} | {best_row.valid_nll:.2f} ± " in rows[0]
    assert sorted(finals.recipe) == ["cosine", "plain"] and (finals.passes == 2).all()
    assert (finals.n == 200).all() and (finals.k == 3).all() and finals.valid_nll.between(100, 600).all()
    best, second = finals.sort_values("valid_nll").recipe
    assert printed.index(f"  {best} ") < printed.index(f"  {second} ")
    assert "L1-iwae-k2: validation NLL of each recipe's last model (k=3, 200 held-out images)" in printed
    scores = {(r, name): (r / name).read_bytes() for r in runs for name in ("frontier.json", "frontier_final.json")}
    logs = {r: (r / "train_log.csv").read_bytes() for r in runs}
    iwae_cli(*TINY)  # again: everything is there, nothing is trained or scored twice
    assert {(r, name): (r / name).read_bytes() for r, name in scores} == scores
    assert {r: (r / "train_log.csv").read_bytes() for r in runs} == logs
    assert json.loads(scores[cosine, "frontier.json"])["2"]["n"] == 50
