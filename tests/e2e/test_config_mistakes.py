"""Every config mistake on the command line of every experiment command is one line `error: ...` that names the key
and the bad value (and what it accepts), exit code 2, and nothing written under the output root; what is free by
design (tags.*, hydra.*, a frontier recipe, a switch-objective setting of the first run) is still taken.

In-process (Typer's CliRunner): the check runs before Hydra starts a job, so no case trains or reads data."""

from __future__ import annotations

from pathlib import Path

import pytest

from iwae_cli.cli.overrides import check_overrides

COMMANDS = (
    "train", "eval-nll", "active-units", "switch-objective", "table1", "table2", "table-extra", "frontier",
    "grad-snr", "bench",
)

# (command, arguments, what the line must name: the key and the bad value, and what it accepts)
MISTAKES = [
    # an option that is not one of a config group's
    ("train", ["model=iwea"], ["model=iwea", "ciwae, dreg, iwae"]),
    ("train", ["-m", "model=vae,iwea", "k=1,5"], ["model=iwea", "vae"]),
    ("train", ["layers=3"], ["layers=3", "1, 2"]),
    ("train", ["-m", "dataset=glob(nope*)"], ["dataset", "nope", "mnist"]),
    ("eval-nll", ["logger=wandb"], ["logger=wandb", "tensorboard"]),
    ("active-units", ["logger=[tensorboard,wandb]"], ["logger=wandb", "mlflow"]),
    ("switch-objective", ["model=iwea"], ["model=iwea", "vae"]),
    # a list of options where the group takes one (only logger= takes several)
    ("train", ["model=[vae,iwae]"], ["model=[vae,iwae]", "takes one option", "-m model=vae,iwae"]),
    ("switch-objective", ["model=[iwae]"], ["model=[iwae]", "takes one option"]),
    ("table1", ["profile=fats"], ["profile=fats", "fast, medium"]),
    ("table2", ["protocol=paper"], ["protocol=paper", "code, text"]),
    ("table-extra", ["optim=adam"], ["optim=adam", "original_code"]),
    ("frontier", ["logger=none,wandb", "-m"], ["logger=wandb", "none"]),
    ("grad-snr", ["hydra/launcher=nope"], ["hydra/launcher=nope", "joblib"]),
    ("bench", ["hydra/sweeper=grid"], ["hydra/sweeper=grid", "basic"]),
    # a key the command does not have, with and without +
    ("train", ["schedule.batch_sise=3"], ["schedule.batch_sise=3", "batch_size"]),
    ("train", ["+schedule.batch_sise=3"], ["schedule.batch_sise=3", "batch_size"]),
    ("train", ["+foo=1"], ["foo=1", "tags"]),
    ("train", ["++foo=1"], ["foo=1", "tags"]),
    ("train", ["model=vr", "model.alpah=0.3"], ["model.alpah=0.3", "alpha"]),
    ("eval-nll", ["eval.kk=5"], ["eval.kk=5", "chunk"]),
    ("active-units", ["threshhold=0.1"], ["threshhold=0.1", "threshold"]),
    ("switch-objective", ["dataset=omniglot"], ["dataset=omniglot", "+ adds a key only under tags, dataset"]),
    ("switch-objective", ["+foo=1"], ["foo=1", "schedule"]),
    ("table1", ["seed=1"], ["seed=1", "seeds"]),
    ("table2", ["+datasets=[mnist]"], ["datasets=[mnist]", "seeds"]),
    ("table-extra", ["baselin=vae"], ["baselin=vae", "baseline"]),
    ("frontier", ["valid_kk=5"], ["valid_kk=5", "valid_k"]),
    ("frontier", ["+cell=1"], ["cell=1", "recipes"]),
    ("grad-snr", ["draw=5"], ["draw=5", "draws"]),
    ("bench", ["min_second=1"], ["min_second=1", "min_seconds"]),
    # adding a key that exists, removing one the command reads, a group of settings given one value
    ("train", ["+k=3"], ["+k=3", "k=3"]),
    ("eval-nll", ["~k"], ["~k", "set it"]),
    ("train", ["eval=3"], ["eval=3", "eval.<name>"]),
    ("table1", ["tags=x"], ["tags=x", "tags.<name>"]),
    # true/false settings take true or false (any case) only; settings with more choices only those
    ("train", ["evaluate=maybe"], ["evaluate=maybe", "true or false"]),
    ("train", ["evaluate=no"], ["evaluate=no", "true or false"]),
    ("train", ["evaluate=1"], ["evaluate=1", "true or false"]),
    ("train", ["-m", "evaluate=true,yes"], ["evaluate=yes", "true or false"]),
    ("train", ["compile=yes"], ["compile=yes", "auto, true or false"]),
    ("train", ["progress=maybe"], ["progress=maybe", "auto, true or false"]),
    ("train", ["arch.same_seed_init=on"], ["arch.same_seed_init=on", "true or false"]),
    ("train", ["protocol=code", "protocol.round_learning_rates=0"], ["round_learning_rates=0", "true or false"]),
    ("train", ["-m", "group=maybe", "model=vae,iwae"], ["group=maybe", "true, false or auto"]),
    ("eval-nll", ["prune_inactive=yes"], ["prune_inactive=yes", "true or false"]),
    ("eval-nll", ["eval.prune_inactive=no"], ["prune_inactive=no", "true or false"]),
    ("active-units", ["inclusive=0"], ["inclusive=0", "true or false"]),
    ("active-units", ["active_units.inclusive=yes"], ["inclusive=yes", "true or false"]),
    ("switch-objective", ["evaluate=perhaps"], ["evaluate=perhaps", "true or false"]),
    ("table1", ["group=yes"], ["group=yes", "true, false or auto"]),
    ("table1", ["profile.prune_inactive=maybe"], ["prune_inactive=maybe", "true or false"]),
    ("table2", ["progress=sometimes"], ["progress=sometimes", "auto, true or false"]),
    ("table-extra", ["device=gpu"], ["device=gpu", "cuda"]),
    ("frontier", ["progress=2"], ["progress=2", "auto, true or false"]),
    ("grad-snr", ["device=tpu"], ["device=tpu", "mps"]),
    ("bench", ["device=cuda:x"], ["device=cuda:x", "cuda:<index>"]),
    ("train", ["download=maybe"], ["download=maybe", "auto, ask, always or never"]),
    ("grad-snr", ["download=ASK"], ["download=ASK", "auto, ask, always or never"]),
    ("train", ["-m", "sweep_metric=best", "hydra/sweeper=optuna"], ["sweep_metric=best", "valid_nll_bound"]),
    ("table-extra", ["loss_reduction=avg"], ["loss_reduction=avg", "sum or mean"]),
    ("train", ["schedule.anneal=linear"], ["schedule.anneal=linear", "step or cosine"]),
    ("eval-nll", ["split=foo"], ["split=foo", "test, valid or train"]),
    ("active-units", ["eval.split=validation"], ["eval.split=validation", "test, valid or train"]),
    # what Hydra's grammar or its flags cannot read
    ("train", ["k=[1"], ["k=[1", "key=value"]),
    ("eval-nll", ["k=1,"], ["k=1,", "key=value"]),
    ("table1", ["seeds=[0,1"], ["seeds=[0,1", "key=value"]),
    ("train", ["--info", "x=2"], ["--info", "x=2"]),
    ("bench", ["--cfg", "everything"], ["--cfg", "everything"]),
    ("train", ["k=1,5"], ["k=1,5", "-m"]),
    ("grad-snr", ["draws=range(10,20)"], ["draws=range(10,20)", "-m"]),
]


# the Typer commands: their key=value arguments and names
TYPER_MISTAKES = [
    ("runs", ["foo=bar"], ["foo", "state, dataset"]),
    ("runs", ["sort=nope"], ["sort by nope", "test_nll"]),
    ("runs", ["k"], ["'k'", "key=value"]),
    ("runs", ["--yes", "k=5"], ["--yes", "--remove"]),
    ("data", ["download", "nope"], ["'nope'", "mnist, omniglot"]),
    ("data", ["verify", "mnist,nope"], ["nope", "binarized_mnist"]),
    ("compare", ["nosuch/table1.csv"], ["no table at nosuch/table1.csv", "table1.csv or table2.csv"]),
    ("compare", ["table1.csv", "--level", "0"], ["--level must be a probability"]),
]
MISTAKES += TYPER_MISTAKES


def nothing_written(root: Path) -> bool:
    return not root.exists() or not any(root.rglob("*"))


@pytest.mark.parametrize(
    "command, args, named", MISTAKES, ids=[f"{c}:{' '.join(a)}" for c, a, _ in MISTAKES]
)
def test_a_mistake_is_one_line_and_exit_2(iwae_cli, output_root: Path, command: str, args: list[str],
                                          named: list[str]) -> None:
    result = iwae_cli(command, *args, ok=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.stdout + result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in named:
        assert text in lines[0], (text, lines[0])
    assert nothing_written(output_root)


def test_every_command_is_covered() -> None:
    """Every command `iwae --help` lists has a mistake above (the Hydra ones each have several)."""
    from iwae_cli.cli.main import app

    registered = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert {command for command, _, _ in MISTAKES} == registered
    assert set(COMMANDS) < registered


@pytest.mark.parametrize(
    "command, args",
    [
        ("train", ["evaluate=TRUE", "progress=False", "compile=FALSE", "device=cpu"]),
        ("train", ["+tags.note=first_look", "++tags.table=t", "hydra.job.chdir=false"]),
        ("train", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=vr", "model.alpha=0.3"]),
        ("train", ["layers='2'", "logger=[tensorboard,mlflow]", "group=auto"]),
        ("train", ["device=mps", "threads=null"]),  # MPS is looked for when a run starts (below)
        ("switch-objective", ["+schedule.switch_passes=[3]", "+seed=9", "model=vr"]),
        ("frontier", ["+recipes.mine=['schedule=smoke']", "~recipes.medium"]),
        ("table1", ["group=TRUE", "profile=smoke", "+tags.note=x"]),
        ("eval-nll", ["prune_inactive=True", "split=valid"]),
    ],
)
def test_what_is_valid_is_taken(iwae_cli, command: str, args: list[str]) -> None:
    result = iwae_cli(command, *args, "--cfg", "job")
    assert result.stderr.strip() == "" or "error" not in result.stderr, result.stderr


def test_sweeps_and_searches_are_taken() -> None:
    """A sweep's values, an Optuna interval and a lockstep group pass the check (the check alone: -m would run
    the jobs, and takes no --info or --cfg)."""
    for args in (
        ["-m", "model=vae,iwae", "k=1,5", "seed=range(2)", "layers='1','2'", "dataset=glob(*mnist)"],
        ["-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "model=vr", "model.alpha=interval(0,1)"],
        ["-m", "hydra/sweeper=optuna", "model=vr", "model.alpha=tag(log,interval(0.01,1))"],
        ["-m", "group=true", "model=vae,iwae", "seed=0,1", "hydra/launcher=submitit_local"],
        ["--multirun", "evaluate=true,FALSE", "progress=choice(auto,true)", "logger=none,tensorboard"],
    ):
        check_overrides("train", "train", args)


def test_mps_on_a_machine_without_it_is_one_line(iwae_cli) -> None:
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    result = iwae_cli("train", "schedule=smoke", "progress=false", "device=mps", ok=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert "device=mps" in lines[0] and "MPS" in lines[0] and "not available here" in lines[0]


def test_version(iwae_cli) -> None:
    from iwae_cli import __version__

    result = iwae_cli("--version")
    assert result.stdout.strip() == f"iwae {__version__}"
