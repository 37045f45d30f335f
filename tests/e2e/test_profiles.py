"""A table's cell trained alone: `iwae train profile=<name> <cell>` makes the run `iwae table1 profile=<name>`
trains for it, which the table then finds finished and evaluated, and reads as its own."""

from __future__ import annotations

import pandas as pd
import pytest

CELL = ("dataset=mnist", "layers=1", "model=iwae", "k=1", "seed=0")
RUN = "mnist/L1-iwae-k1/smoke-text-paper-sum-seed0"


@pytest.mark.slow
def test_train_with_the_tables_profile_makes_the_tables_run(iwae_cli, output_root) -> None:
    iwae_cli("train", "profile=smoke", *CELL, "evaluate=true", "progress=false")
    run = output_root / "runs" / RUN
    trained = {name: (run / name).read_bytes() for name in ("checkpoint.pt", "metrics.json")}

    iwae_cli("table1", "profile=smoke", "datasets=[mnist]", "depths=[1]", "ks=[1]", "objectives=[iwae]")

    # the same directory, resumed as finished (same fingerprint) and already evaluated as the table evaluates
    runs_dir = output_root / "runs"
    runs = [p.parent.relative_to(runs_dir).as_posix() for p in runs_dir.glob("**/checkpoint.pt")]
    assert runs == [RUN]
    assert {name: (run / name).read_bytes() for name in trained} == trained
    table = pd.read_csv(output_root / "tables" / "smoke" / "table1.csv")
    assert table.loc[table.objective == "iwae", "nll"].notna().all(), table
