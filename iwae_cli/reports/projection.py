"""Hours for the paper's Table 1 and Table 2 at its schedule, projected from measured step times (`iwae bench`).

Table 1 trains, per dataset and depth, VAE and IWAE at k = 5 and 50 and one model at k = 1 (L_1 = L_VAE: the
tables train it once, sweep.SHARED_CELLS): 20 models of 3,280 passes. Table 2 continues two of them (MNIST,
one layer: VAE k=1 with IWAE k=50 and the reverse) for 3^7 passes more. Each of the 22 models is evaluated with
k = 5000 on the 10,000 test images.

Solo: one model after another. Grouped: the models of one (dataset, depth, k) as one lockstep group (what
`group=true` trains), costing the group step's time; Table 2's two runs (different k) train alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from iwae_cli.data.registry import get_dataset

# Table 1's datasets as the code trains on them (its validation holdout): examples per pass
TABLE1_TRAIN = tuple(get_dataset(name).train_examples(holdout=True) for name in ("mnist", "omniglot"))
TEST = 10_000  # examples per evaluation
# the paper's schedule, 3^i passes at stage i = 0..7, and Table 2's switch, its stage 7 again (3^7 passes); the
# one definition (reports.plots draws the paper's point at PAPER_PASSES)
PAPER_PASSES = sum(3**i for i in range(8))  # 3,280
SWITCH_PASSES = 3**7  # 2,187
MODELS_PER_K = {1: 1, 5: 2, 50: 2}  # Table 1's trained models per (dataset, depth, k)
TABLE2_SWITCHES = ((1, 50), (1, 1))  # (depth, k) of Table 2's two continued runs, on MNIST

StepTime = Callable[[int, int, int], float | None]  # (depth, k, group size) -> seconds per model and step


def step_times(results: list[dict[str, Any]]) -> StepTime:
    """Seconds per model and step from bench rows: the faster of the plain and the compiled step for one
    model ("train", "train compiled"), the group step's time per member for "train group xG"."""
    best: dict[tuple[int, int, int], float] = {}
    for row in results:
        what = row["what"]
        if not what.startswith("train"):
            continue
        size = int(what.rsplit("x", 1)[1]) if what.startswith("train group") else 1
        key = (row["layers"], row["k"], size)
        best[key] = min(best.get(key, float("inf")), row["step_ms"] / 1e3)
    return lambda depth, k, size: best.get((depth, k, size))


def project_hours(results: list[dict[str, Any]], batch: int) -> dict[str, float | None]:
    """The projection from bench rows (None where a needed shape was not timed)."""
    step = step_times(results)
    evaluation = {r["layers"]: r["step_ms"] / 1e3 for r in results if r["what"].startswith("eval")}

    def total(cost: Callable[[int, int, int], float | None]) -> float | None:
        seconds = 0.0
        for examples in TABLE1_TRAIN:
            for depth in (1, 2):
                for k, models in MODELS_PER_K.items():
                    per_model = cost(depth, k, models)
                    if per_model is None:
                        return None
                    seconds += models * PAPER_PASSES * (examples // batch) * per_model
        return seconds / 3600

    solo = total(lambda depth, k, models: step(depth, k, 1))
    grouped = total(lambda depth, k, models: step(depth, k, models) if models > 1 else step(depth, k, 1))
    switch = [step(depth, k, 1) for depth, k in TABLE2_SWITCHES]
    table2 = (
        None
        if None in switch
        else SWITCH_PASSES * (TABLE1_TRAIN[0] // batch) * sum(s for s in switch if s is not None) / 3600
    )
    models_per_depth = {
        1: 2 * sum(MODELS_PER_K.values()) + len(TABLE2_SWITCHES),
        2: 2 * sum(MODELS_PER_K.values()),
    }
    eval_minutes = (
        sum(n * TEST * evaluation[depth] for depth, n in models_per_depth.items()) / 60
        if set(evaluation) >= {1, 2}
        else None
    )
    return {
        "table1_solo_hours": solo,
        "table1_grouped_hours": grouped,
        "table2_hours": table2,
        "eval_minutes_all_models": eval_minutes,
    }
