"""Every CUDA path, on a CUDA GPU (`pytest -m cuda`; skipped where there is none; scripts/gpu_check.sh runs
them on a GPU machine). The last test runs where there is NO GPU: device=cuda is refused in one line."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from tests.helpers.run_checks import (
    background_iwae,
    load_checkpoint,
    read_json,
    run_iwae,
    schedule_name,
    schedule_overrides,
)

HAS_CUDA = torch.cuda.is_available()
SMOKE = ("schedule=smoke", "progress=false")
RUN = "mnist/L1-iwae-k5/smoke-text-paper-sum-seed0"


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU here")
@pytest.mark.parametrize("compile_choice", ["false", "true"])
@pytest.mark.usefixtures("output_root")
def test_a_smoke_run_trains_on_cuda(iwae_cli, compile_choice: str) -> None:
    """Plain and compiled (CUDA graphs) steps; the checkpoint is finite and loads on the CPU."""
    iwae_cli(
        "train",
        *SMOKE,
        "device=cuda",
        f"compile={compile_choice}",
        "evaluate=true",
        "eval.k=100",
        "eval.examples=100",
    )
    run = iwae_cli.run_dir(RUN)
    assert read_json(run / "status.json")["state"] == "done"
    state = load_checkpoint(run)
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert read_json(run / "metrics.json")["test_nll"]["nll"] > 0


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU here")
@pytest.mark.parametrize("compile_choice", ["false", "true"])
def test_grouped_runs_follow_their_solo_paths_on_cuda(
    output_root: Path, tmp_path: Path, compile_choice: str
) -> None:
    from tests.training.test_group_train import MEMBERS, carried_out, parameters, parameters_at_start, spec_of

    specs = {n: spec_of(*o, "device=cuda", f"compile={compile_choice}") for n, o in MEMBERS.items()}
    for name, spec in specs.items():
        carried_out([spec], [tmp_path / "solo" / name])
    finished, failures = carried_out(list(specs.values()), [tmp_path / "group" / n for n in specs])
    assert failures == {} and len(finished) == len(specs)
    for name, spec in specs.items():
        solo, group = tmp_path / "solo" / name, tmp_path / "group" / name
        moved = (parameters(solo) - parameters_at_start(spec).cpu()).norm()
        assert (parameters(group) - parameters(solo)).norm() < 1e-3 * moved, name
        assert torch.equal(load_checkpoint(solo)["generator"], load_checkpoint(group)["generator"])


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU here")
@pytest.mark.usefixtures("output_root")
def test_eval_nll_on_cuda_matches_the_cpu(iwae_cli) -> None:
    """The same model and images; the samples differ (each device's own generator), so the two k=5000
    estimates agree to Monte Carlo error: within 0.05 nats."""
    iwae_cli("train", *SMOKE, "device=cpu", "compile=false")
    run = iwae_cli.run_dir(RUN)
    nll = {}
    for device in ("cpu", "cuda"):
        result = iwae_cli(
            "eval-nll", f"run={run}", f"device={device}", "k=5000", "examples=500", "progress=false"
        )
        nll[device] = float(result.stdout.split(" NLL = ")[1].split()[0])
    assert abs(nll["cpu"] - nll["cuda"]) < 0.05, nll


# 2 x 200 steps, a checkpoint every ~0.2 s: stopped in the middle with SIGTERM
LONG_SCHEDULE = {"train_examples": 4000}
LONG = (
    "train",
    "schedule=smoke",
    *schedule_overrides(**LONG_SCHEDULE),
    "checkpoint_minutes=0.0035",
    "progress=false",
    "compile=false",
)
LONG_RUN = f"mnist/L1-iwae-k5/{schedule_name('smoke', **LONG_SCHEDULE)}-text-paper-sum-seed0"


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU here")
@pytest.mark.parametrize("first, then", [("cuda", "cpu"), ("cpu", "cuda")])
def test_a_checkpoint_written_on_one_device_resumes_on_the_other(
    iwae_script: Path, cli_env: dict[str, str], output_root: Path, tmp_path: Path, first: str, then: str
) -> None:
    run = output_root / "runs" / LONG_RUN
    process = background_iwae(iwae_script, (*LONG, f"device={first}"), cli_env, tmp_path / "first")
    process.wait_for(lambda: (run / "checkpoint.pt").exists(), "the first checkpoint")
    process.popen.send_signal(signal.SIGTERM)
    assert process.wait() == 143, process.stderr
    assert load_checkpoint(run)["position"]["passes_done"] < 2
    resumed = run_iwae(iwae_script, (*LONG, f"device={then}"), cli_env, tmp_path / "then")
    assert "resuming" in resumed.stdout
    state = load_checkpoint(run)
    assert state["position"]["passes_done"] == 2 and read_json(run / "status.json")["state"] == "done"
    assert all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.mark.skipif(HAS_CUDA, reason="a CUDA GPU is here")
def test_device_cuda_without_a_gpu_is_refused_in_one_line(iwae_cli) -> None:
    result = iwae_cli("train", *SMOKE, "device=cuda", ok=False)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: device=cuda but no CUDA GPU is visible to PyTorch; use device=cpu or device=auto"
    )
