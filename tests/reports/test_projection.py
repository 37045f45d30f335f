"""The paper-schedule projection (projection.py) from bench rows, checked against sums done by hand."""

from __future__ import annotations

import pytest

from iwae_cli.reports.projection import project_hours

PASSES_PER_TABLE1_MODEL = 3_280
STEPS_PER_PASS = 59_600 // 20 + 23_000 // 20  # MNIST and OMNIGLOT under the code's holdout


def rows(solo_ms: float, group_ms: dict[int, float], eval_ms: float) -> list[dict]:
    out = []
    for layers in (1, 2):
        for k in (1, 5, 50):
            out.append({"what": "train", "layers": layers, "k": k, "step_ms": solo_ms * 2})
            out.append({"what": "train compiled", "layers": layers, "k": k, "step_ms": solo_ms})  # the faster
            out += [
                {"what": f"train group x{g}", "layers": layers, "k": k, "step_ms": ms}
                for g, ms in group_ms.items()
            ]
        out.append({"what": "eval k=5000", "layers": layers, "k": 5000, "step_ms": eval_ms})
    return out


def test_hours_are_the_models_steps_times_their_step_time() -> None:
    projection = project_hours(rows(1.0, {2: 0.5, 4: 0.1}, 2.0), batch=20)
    # 2 depths x (1 + 2 + 2) models per dataset, each 3,280 passes of its dataset's steps, 1 ms a step
    solo = 2 * 5 * PASSES_PER_TABLE1_MODEL * STEPS_PER_PASS * 1e-3 / 3600
    assert projection["table1_solo_hours"] == pytest.approx(solo)
    # grouped: k=1 alone (1 model-ms), k=5 and k=50 as groups of two at 0.5 ms per model: 3 model-ms of 5
    assert projection["table1_grouped_hours"] == pytest.approx(solo * 3 / 5)
    # Table 2: two MNIST runs of 2,187 passes at 1 ms
    assert projection["table2_hours"] == pytest.approx(2 * 2_187 * 2_980 * 1e-3 / 3600)
    # 22 models x 10,000 test images x 2 ms
    assert projection["eval_minutes_all_models"] == pytest.approx(22 * 10_000 * 2e-3 / 60)


def test_a_shape_not_timed_leaves_its_figure_unknown() -> None:
    partial = [r for r in rows(1.0, {}, 2.0) if not (r["layers"] == 2 and r["k"] == 50)]
    projection = project_hours(partial, batch=20)
    assert projection["table1_solo_hours"] is None and projection["table1_grouped_hours"] is None
    assert projection["table2_hours"] is not None  # needs only 1-layer k=1 and k=50
