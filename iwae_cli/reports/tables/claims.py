"""The paper's claims, judged on our runs.

A difference in NLL counts only when it exceeds NOISE_Z standard errors of two kinds: over test examples
(paired: the same binarised test set for both sides) and, with several seeds, over seeds (paired by seed),
which measures training noise. With one seed only the first is known, and the verdict says so. A count of
active units has no error over test examples, but it too changes from seed to seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from iwae_cli.reports.tables.results import (
    paired_nll_difference,
    seed_level_difference,
    seed_paired_difference,
    units_by_seed,
)

NOISE_Z = 2.0  # a difference counts only when it exceeds this many standard errors
ONE_SEED = "one seed: training noise not measured"


def verdict(diff: float | None, se: float | None, expect_negative: bool) -> str:
    """holds / does not hold / inconclusive (within NOISE_Z standard errors) / not measured. Without a standard
    error the sign decides, and no difference at all does not hold."""
    if diff is None:
        return "not measured"
    if se is not None and abs(diff) <= NOISE_Z * se:
        return f"inconclusive (|diff| <= {NOISE_Z:g} SE)"
    return "holds" if (diff < 0 if expect_negative else diff > 0) else "does not hold"


def one_seed(result: str) -> str:
    """A verdict that says what one seed leaves out, inside its parentheses where it has some."""
    return result[:-1] + f"; {ONE_SEED})" if result.endswith(")") else f"{result} ({ONE_SEED})"


def nll_claim(
    claim: str, case: str, a: list[Path], b: list[Path], difference_of: str, lower: bool = True
) -> dict[str, Any]:
    """A claim that NLL(a) is lower (or, lower=False, higher) than NLL(b), judged on the paired difference
    NLL(a) - NLL(b), which `difference_of` names for the reader. With runs of two or more seeds on both sides
    the difference must also exceed NOISE_Z standard errors over seeds."""
    paired = paired_nll_difference(a, b) if a and b else None
    diff, se = paired if paired else (None, None)
    by_seed = seed_level_difference(a, b) if a and b else None
    seed_se = by_seed[1] if by_seed else None
    noise = None if se is None else max(se, seed_se or 0.0)
    result = verdict(diff, noise, expect_negative=lower)
    if diff is not None and by_seed is None:  # say what the verdict leaves out
        result = one_seed(result)
    return {
        "claim": claim,
        "case": case,
        "difference_of": difference_of,
        "difference": _round(diff),
        "se": _round(se),
        "seed_se": _round(seed_se),
        "seeds": by_seed[2] if by_seed else (1 if diff is not None else None),
        "verdict": result,
    }


def units_claim(
    claim: str, case: str, a: list[Path], b: list[Path], difference_of: str, more: bool
) -> dict[str, Any]:
    """A claim that a has more (more=True) or fewer active units than b, judged on the mean over seeds of the
    same-seed difference in counts; with two or more seeds it must also exceed NOISE_Z standard errors over
    seeds (one seed's unit more, the others' none, is training noise, not a finding)."""
    paired = seed_paired_difference(units_by_seed(a), units_by_seed(b))
    diff, seed_se, seeds = paired if paired else (None, None, None)
    # seed_se 0: every seed agrees, nothing to weigh, so the sign decides
    result = verdict(diff, seed_se or None, expect_negative=not more)
    if diff is not None and seed_se is None:
        result = one_seed(result)
    return {
        "claim": claim,
        "case": case,
        "difference_of": difference_of,
        "difference": _round(diff),
        "se": None,
        "seed_se": _round(seed_se),
        "seeds": seeds,
        "verdict": result,
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def table1_claims(
    cells: dict[tuple, list[Path]], datasets: list[str], layers: list[int]
) -> list[dict[str, Any]]:
    """The paper's Table 1 claims (docs/protocol.md, "The paper's claims"), one entry per case."""

    def runs(d, depth, o, k):
        if k == 1:  # one model under either objective (filed under one only when only one was asked for)
            return cells.get((d, depth, "vae", 1)) or cells.get((d, depth, "iwae", 1), [])
        return cells.get((d, depth, o, k), [])

    claims = []
    for d in datasets:
        for depth in layers:
            for k_small, k_big in ((1, 5), (5, 50)):
                claims.append(
                    nll_claim(
                        "IWAE NLL falls as k grows",
                        f"{d} L{depth}: k={k_big} vs k={k_small}",
                        runs(d, depth, "iwae", k_big),
                        runs(d, depth, "iwae", k_small),
                        f"NLL(k={k_big}) - NLL(k={k_small})",
                    )
                )
            for k in (5, 50):
                claims.append(
                    nll_claim(
                        "IWAE beats VAE at the same k > 1",
                        f"{d} L{depth} k={k}",
                        runs(d, depth, "iwae", k),
                        runs(d, depth, "vae", k),
                        "NLL(IWAE) - NLL(VAE)",
                    )
                )
            claims.append(
                units_claim(
                    "IWAE has more active units than VAE at k=50",
                    f"{d} L{depth}",
                    runs(d, depth, "iwae", 50),
                    runs(d, depth, "vae", 50),
                    "units(IWAE) - units(VAE)",
                    more=True,
                )
            )
        if 1 in layers and 2 in layers:
            # IWAE with k=1 is the VAE with k=1 (the same model), so k=1 is one case, not one per objective
            for o, k in (("vae", 1), ("vae", 5), ("vae", 50), ("iwae", 5), ("iwae", 50)):
                claims.append(
                    nll_claim(
                        "two stochastic layers beat one",
                        f"{d} k=1" if k == 1 else f"{d} {o} k={k}",
                        runs(d, 2, o, k),
                        runs(d, 1, o, k),
                        "NLL(2 layers) - NLL(1 layer)",
                    )
                )
    return claims


def claims_text(claims: list[dict[str, Any]]) -> list[str]:
    """One line per claim with its tally, then one indented line per case with the figures."""
    lines = []
    for claim in dict.fromkeys(c["claim"] for c in claims):
        cases = [c for c in claims if c["claim"] == claim]
        tally = pd.Series([c["verdict"].split(" (")[0] for c in cases]).value_counts().to_dict()
        lines.append(f"- {claim}: " + ", ".join(f"{n} {v}" for v, n in tally.items()))
        for c in cases:
            lines.append(f"    - {c['case']}: {c['verdict']}" + (f"; {figures(c)}" if figures(c) else ""))
    return lines


def figures(c: dict[str, Any]) -> str:
    """'NLL(a) - NLL(b) = -0.500 ± 0.130 (SE examples) ± 0.200 (SE seeds, 3 seeds)' for one case."""
    if c["difference"] is None:
        return ""
    text = f"{c['difference_of']} = {c['difference']:+.3f}"
    if c.get("se") is not None:
        text += f" ± {c['se']:.3f} (SE examples)"
    if c.get("seed_se") is not None:
        text += f" ± {c['seed_se']:.3f} (SE seeds, {c['seeds']} seeds)"
    return text
