"""Runs trained in lockstep groups (group_step.py, group_train.py): each run follows its solo path to float
rounding, keeps its own run directory, fails alone, and a killed group resumes exactly."""

from __future__ import annotations

import shlex
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict, read_write

from iwae_cli.core.objective_registry import LOG_WEIGHT_BOUNDS, OBJECTIVES, bound_objective
from iwae_cli.pipeline.lifecycle import RunPlan, carry_out
from iwae_cli.specs.run import run_spec
from iwae_cli.training.lockstep import lockstep_groups
from iwae_cli.training.spec import RunSpec
from iwae_cli.training.trainer import Trainer
from tests.helpers.background import kill_leftovers
from tests.helpers.run_checks import (
    assert_same_run,
    background_iwae,
    environment,
    load_checkpoint,
    read_json,
    run_iwae,
    schedule_name,
    schedule_overrides,
)

# 2 stages x 10 steps on 200 images
TINY = (
    "schedule=smoke",
    "schedule.train_examples=200",
    "progress=false",
    "compile=false",
    "device=cpu",
    "k=3",
    "threads=1",
)


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    yield
    HydraConfig.instance().cfg = None
    kill_leftovers()


def spec_of(*overrides: str) -> RunSpec:
    with initialize_config_module(config_module="iwae_cli.conf", version_base="1.3"):
        cfg: DictConfig = compose("train", overrides=[*TINY, *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return run_spec(cfg, "(resume hint)")


def carried_out(specs: list[RunSpec], run_dirs: list[Path]) -> tuple[list[Path], dict[Path, str]]:
    """The runs through the lifecycle together: those that finished, and why the others failed."""
    failures = carry_out([RunPlan(spec, run_dir) for spec, run_dir in zip(specs, run_dirs, strict=True)])
    return [d for d in run_dirs if d not in failures], {d: str(e) for d, e in failures.items()}


def parameters(run_dir: Path) -> torch.Tensor:
    return torch.cat([v.flatten() for v in load_checkpoint(run_dir)["model"].values()])


MEMBERS = {
    "vae-0": ("model=vae", "seed=0"),
    "iwae-0": ("model=iwae", "seed=0"),
    "iwae-1": ("model=iwae", "seed=1"),
}


@pytest.mark.parametrize("layers", ["1", "2"])
def test_a_run_trained_in_a_group_ends_where_it_ends_alone(
    output_root: Path, tmp_path: Path, layers: str
) -> None:
    """Mixed objectives and seeds in one group: each run's parameters equal its solo run's to float rounding
    (far closer than the distance training moved them), its generator and position exactly."""
    specs = {name: spec_of(f"layers='{layers}'", *o) for name, o in MEMBERS.items()}
    for name, spec in specs.items():
        carried_out([spec], [tmp_path / "solo" / name])
    finished, failures = carried_out(list(specs.values()), [tmp_path / "group" / n for n in specs])
    assert failures == {} and len(finished) == 3
    assert len(lockstep_groups([Trainer(s, tmp_path / "fresh" / n) for n, s in specs.items()])) == 1

    initial = {name: parameters_at_start(spec) for name, spec in specs.items()}
    for name in specs:
        solo, group = tmp_path / "solo" / name, tmp_path / "group" / name
        a, b = load_checkpoint(solo), load_checkpoint(group)
        assert torch.equal(a["generator"], b["generator"])
        assert a["position"]["passes_done"] == b["position"]["passes_done"] == 2
        moved = (parameters(solo) - initial[name]).norm()
        assert (parameters(group) - parameters(solo)).norm() < 1e-3 * moved, name
        for x, y in zip(a["position"]["history"], b["position"]["history"], strict=True):
            assert x["train_bound"] == pytest.approx(y["train_bound"], rel=1e-5)
        assert read_json(group / "status.json")["state"] == "done"
        assert (group / "config.yaml").read_text() == specs[name].config_yaml
    # the comparison can fail: another run of the group is far from this one's solo path
    other = (parameters(tmp_path / "group" / "iwae-1") - parameters(tmp_path / "solo" / "iwae-0")).norm()
    assert other > 0.1 * (parameters(tmp_path / "solo" / "iwae-0") - initial["iwae-0"]).norm()


def parameters_at_start(spec: RunSpec) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in Trainer(spec, Path("/nonexistent")).model.parameters()])


def test_runs_share_a_step_only_at_one_place_of_one_schedule(output_root: Path, tmp_path: Path) -> None:
    base = spec_of("model=iwae")
    carried_out([base], [tmp_path / "trained"])  # finished: stands at the end of the schedule
    runs = [
        Trainer(base, tmp_path / "a"),
        Trainer(spec_of("model=vae", "seed=4"), tmp_path / "b"),
        Trainer(base, tmp_path / "trained", load_checkpoint(tmp_path / "trained")),
        Trainer(spec_of("model=iwae", "k=5"), tmp_path / "c"),
        Trainer(spec_of("model=dreg"), tmp_path / "d"),  # not a bound of log w: trains alone
        Trainer(spec_of("model=dreg", "seed=2"), tmp_path / "e"),
    ]
    groups = [[runs.index(r) for r in group] for group in lockstep_groups(runs)]
    assert groups == [[0, 1], [2], [3], [4], [5]]


@pytest.fixture
def nan_objective() -> Iterator[str]:
    """An objective whose bound is NaN from the first step (registered for this test only)."""
    bound_objective("nan_for_tests")(lambda log_w: log_w.mean(0) * float("nan"))
    yield "nan_for_tests"
    del OBJECTIVES["nan_for_tests"], LOG_WEIGHT_BOUNDS["nan_for_tests"]


def test_a_run_that_turns_non_finite_fails_alone(
    output_root: Path, tmp_path: Path, nan_objective: str
) -> None:
    vae, broken = spec_of("model=vae"), spec_of("model=vae", f"model.name={nan_objective}")
    carried_out([vae], [tmp_path / "solo"])
    finished, failures = carried_out([broken, vae], [tmp_path / "broken", tmp_path / "vae"])
    assert finished == [tmp_path / "vae"]
    assert list(failures) == [tmp_path / "broken"] and "non-finite" in failures[tmp_path / "broken"]
    status = read_json(tmp_path / "broken" / "status.json")
    assert status["state"] == "failed" and "non-finite" in status["message"]
    assert not (tmp_path / "broken" / "checkpoint.pt").exists()  # nothing non-finite was saved
    moved = (parameters(tmp_path / "solo") - parameters_at_start(vae)).norm()
    assert (parameters(tmp_path / "vae") - parameters(tmp_path / "solo")).norm() < 1e-3 * moved
    _, alone = carried_out([broken], [tmp_path / "broken-alone"])  # and alone it fails the same way
    assert "non-finite" in alone[tmp_path / "broken-alone"]


# --------------------------------------------------------------------------------- through the real CLI

# two cells (vae, iwae) of one shape, 2 x 200 steps, a checkpoint every ~0.2 s
GROUP_SCHEDULE = {"train_examples": 4000}
GROUP_ARGS = (
    "train",
    "-m",
    "model=vae,iwae",
    "group=true",
    "schedule=smoke",
    *schedule_overrides(**GROUP_SCHEDULE),
    "checkpoint_minutes=0.0035",
    "progress=false",
    "threads=1",
    "compile=false",
)
CELLS = tuple(
    f"mnist/L1-{model}-k5/{schedule_name('smoke', **GROUP_SCHEDULE)}-text-paper-sum-seed0"
    for model in ("vae", "iwae")
)


def test_a_group_killed_with_sigkill_resumes_to_the_uninterrupted_group(
    iwae_script: Path, cli_env: dict[str, str], mnist_data_dir: Path, output_root: Path, tmp_path: Path
) -> None:
    reference = background_iwae(
        iwae_script, GROUP_ARGS, environment(mnist_data_dir, tmp_path / "ref"), tmp_path / "ref-logs"
    )
    runs = [output_root / "runs" / cell for cell in CELLS]
    process = background_iwae(iwae_script, GROUP_ARGS, cli_env, tmp_path / "first")
    process.wait_for(lambda: all((r / "checkpoint.pt").exists() for r in runs), "both runs checkpointed")
    time.sleep(0.2)
    assert process.popen.poll() is None, "the group finished before the kill: lengthen the schedule"
    process.popen.kill()
    assert process.wait() == -signal.SIGKILL
    assert all(load_checkpoint(r)["position"]["passes_done"] < 2 for r in runs)

    resumed = run_iwae(iwae_script, GROUP_ARGS, cli_env, tmp_path / "resume")
    assert resumed.stdout.count("resuming") == 2
    reference.succeed()
    for cell, run in zip(CELLS, runs, strict=True):
        assert_same_run(run, tmp_path / "ref" / "runs" / cell)


def test_a_stopped_group_says_the_sweep_that_resumes_it(
    iwae_script: Path, cli_env: dict[str, str], output_root: Path, tmp_path: Path
) -> None:
    runs = [output_root / "runs" / cell for cell in CELLS]
    process = background_iwae(iwae_script, GROUP_ARGS, cli_env, tmp_path / "first")
    process.wait_for(lambda: all((r / "checkpoint.pt").exists() for r in runs), "both runs checkpointed")
    process.popen.send_signal(signal.SIGTERM)
    assert process.wait() != 0
    hint = process.stderr.split("Resume with: ", 1)[1].split("\n")[0]
    assert hint.startswith("iwae train -m ") and hint.endswith(" model=vae,iwae group=true"), hint
    for run in runs:
        status = read_json(run / "status.json")
        assert status["state"] == "interrupted" and "stopped by SIGTERM" in status["message"]
    resumed = run_iwae(iwae_script, shlex.split(hint)[1:], cli_env, tmp_path / "resume")
    assert resumed.stdout.count("resuming") == 2
    assert all(read_json(r / "status.json")["state"] == "done" for r in runs)


def test_a_grouped_sweep_leaves_ordinary_runs(iwae_cli, output_root: Path) -> None:
    schedule = {"train_examples": 100}
    args = (
        "train",
        "-m",
        "model=vae,iwae",
        "seed=0,1",
        "schedule=smoke",
        *schedule_overrides(**schedule),
        "progress=false",
        "compile=false",
    )
    iwae_cli(*args, "group=true")
    listing = iwae_cli("runs").stdout
    assert listing.count(" done ") == 4, listing
    groups = list((output_root / "groups").glob("mnist/L1-k5/*/train.log"))
    assert len(groups) == 1  # one job: the group's log and Hydra's files are there, not among the runs
    label = schedule_name("smoke", **schedule)
    for model in ("vae", "iwae"):
        for seed in (0, 1):
            run = output_root / "runs" / f"mnist/L1-{model}-k5/{label}-text-paper-sum-seed{seed}"
            log = (run / "train.log").read_text()
            assert log.count("train bound") == 2  # its own two epochs, not the other runs'
            assert "training 4 runs in lockstep" in log
            config = (run / "config.yaml").read_text()
            assert f"model:\n  name: {model}\n" in config and f"\nseed: {seed}\n" in config
            assert "group_members: []" in config  # as a solo run's config
    # group=false: the same sweep, one job per cell (each run found finished)
    result = iwae_cli(*args, "group=false")
    assert "Launching 4 jobs" in result.stdout + result.stderr
    assert len(list((output_root / "groups").glob("mnist/L1-k5/*/train.log"))) == 1


def test_group_takes_true_false_or_auto(iwae_cli) -> None:
    result = iwae_cli("train", "-m", "model=vae,iwae", "group=maybe", ok=False)
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: group must be true, false or auto, got group=maybe"


# --------------------------------------------------------------------------------- the group's checkpoints


def write_place(path: Path, step: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    position = {"stage": 0, "epoch_in_stage": 0, "step_in_epoch": step}
    torch.save({"format": "iwae-checkpoint-v1", "position": position}, path)


def place(run_dir: Path, name: str = "checkpoint.pt") -> int | None:
    path = run_dir / name
    return torch.load(path, weights_only=True)["position"]["step_in_epoch"] if path.exists() else None


@pytest.mark.parametrize(
    "killed_during, expected",
    [
        ("writing", [10, 10, 10]),  # some next checkpoints written, none replaced yet: all stay at 10
        ("replacing", [20, 20, 20]),  # one replaced already: the others complete to 20
    ],
)
def test_a_group_checkpoint_cut_by_a_kill_is_undone_or_completed(
    tmp_path: Path, killed_during: str, expected: list[int]
) -> None:
    from iwae_cli.training.lockstep import settle_checkpoints

    runs = [tmp_path / name for name in "abc"]
    for run in runs:
        write_place(run / "checkpoint.pt", 10)
    if killed_during == "writing":  # a and b wrote their next checkpoint, c did not get to it
        for run in runs[:2]:
            write_place(run / "checkpoint.next.pt", 20)
    else:  # all written; a replaced its checkpoint, b and c not yet
        write_place(runs[0] / "checkpoint.pt", 20)
        for run in runs[1:]:
            write_place(run / "checkpoint.next.pt", 20)
    settle_checkpoints(runs)
    assert [place(run) for run in runs] == expected
    assert not any((run / "checkpoint.next.pt").exists() for run in runs)


# --------------------------------------------------------------------------------- the sweep's arguments


def test_a_grouped_sweep_moves_objectives_and_seeds_into_members() -> None:
    from iwae_cli.cli.group_sweep import grouped_arguments

    args = ["-m", "model=vae,iwae", "seed=range(0,2)", "k=5,50", "layers='1','2'", "group=true"]
    out = grouped_arguments(args)
    assert out[:3] == ["-m", "k=5,50", "layers='1','2'"]
    members = (
        "[['model=vae','seed=0'],['model=vae','seed=1'],['model=iwae','seed=0'],['model=iwae','seed=1']]"
    )
    assert out[3] == f"group_members={members}"
    assert out[4] == "hydra.sweep.dir=${output_root}/groups"
    assert out[5].startswith("hydra.sweep.subdir='${dataset.name}/L${hydra:runtime.choices.layers}-k${k}/${iwae_schedule:${schedule}}-")
    # nothing to group: a single run, group=false, one member, or (here, without CUDA) group=auto
    assert grouped_arguments(["model=vae", "seed=1", "group=true"]) == ["model=vae", "seed=1"]
    assert grouped_arguments(["-m", "model=vae,iwae", "group=false"]) == ["-m", "model=vae,iwae"]
    assert grouped_arguments(["-m", "model=vae", "k=5,50", "group=true"]) == ["-m", "model=vae", "k=5,50"]
    if not torch.cuda.is_available():
        assert grouped_arguments(["-m", "model=vae,iwae", "group=auto"]) == ["-m", "model=vae,iwae"]
    assert grouped_arguments(["-m", "model=vae,iwae", "group=auto", "device=cpu"])[1:] == [
        "model=vae,iwae",
        "device=cpu",
    ]
