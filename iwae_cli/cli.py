"""The `iwae` command line: Typer routes subcommands; experiment subcommands hand their arguments to Hydra.

Everything after an experiment subcommand's name goes to Hydra untouched, so overrides, `-m` sweeps, launchers,
`--cfg job`, `--info` and Hydra's `--help` (which lists the config groups) work exactly as in any Hydra app.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
from pathlib import Path

import hydra
import typer

from .data_cli import data_app
from .errors import ConfigError, IwaeError, first_line
from .group_sweep import grouped_arguments

app = typer.Typer(
    help="Reproduce and extend 'Importance Weighted Autoencoders' (Burda et al., ICLR 2016).\n\n"
    "Example: iwae train model=iwae k=50    (then: iwae eval-nll, iwae active-units, iwae runs)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(data_app, name="data")

# Typer must not parse these commands' arguments, nor claim --help (Hydra's lists the config groups).
HYDRA_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


LAYERS_SWEEPS = "layers=1,2, layers='choice(1,2)', layers='range(1,3)' or layers='glob(*)'"


def layers_options() -> list[str]:
    """The packaged `layers` configs ("1", "2", ...), in numeric order."""
    from importlib.resources import files

    names = [
        p.name[: -len(".yaml")]
        for p in files("iwae_cli.conf").joinpath("layers").iterdir()
        if p.name.endswith(".yaml")
    ]
    return sorted(names, key=lambda n: (len(n), n))


def quote_numeric_choices(args: list[str]) -> list[str]:
    """Rewrite each `layers=...` so Hydra takes it; see :func:`quote_layers`."""
    return [quote_layers(arg) if arg.startswith("layers=") else arg for arg in args]


def quote_layers(arg: str) -> str:
    """`layers=2` -> `layers='2'`, and a sweep (1,2 / choice / range / glob) -> its choices, `layers='1','2'`.

    Hydra parses a bare 2 as an int, which it refuses as a config-group choice; its sweepers also hand each job
    an unquoted `layers=2`, so only an explicit list of quoted choices survives a sweep. Anything else that
    Hydra would choke on with a traceback (a list, a float, an interval, a parse error) is a ConfigError.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob
    from hydra.errors import HydraException

    try:
        override = OverridesParser.create().parse_override(arg)
    except HydraException as e:
        raise ConfigError(f"cannot read {arg} ({first_line(e)}): write one of {LAYERS_SWEEPS}") from None
    value = override.value()
    if isinstance(value, Glob):
        choices = value.filter(layers_options())
    elif override.is_discrete_sweep():
        choices = list(override.sweep_string_iterator())
    elif isinstance(value, int) and not isinstance(value, bool):
        choices = [str(value)]
    elif value is None or isinstance(value, str):
        return arg  # a config name (Hydra reports unknown ones itself), an interpolation, or null
    else:
        raise ConfigError(
            f"{arg}: layers takes one config name per job ({', '.join(layers_options())}); to sweep several, "
            f"write one of {LAYERS_SWEEPS} with -m"
        )
    return "layers=" + ",".join(f"'{c}'" for c in checked(arg, choices))


def checked(arg: str, choices: list[str]) -> list[str]:
    """``choices``, if each names a layers config. A single unknown name is left to Hydra's own message."""
    options = layers_options()
    unknown = [c for c in choices if c not in options]
    if not choices or (unknown and len(choices) > 1):
        found = f"has no config {', '.join(unknown)}" if unknown else "selects no config"
        raise ConfigError(f"{arg} {found}: the layers configs are {', '.join(options)}")
    return choices


# Hydra flags that only inspect the config: they must not create directories.
INSPECTION_FLAGS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--resolve", "-sc"}


def with_absolute_output_root(args: list[str]) -> list[str]:
    """Pin `output_root` to an absolute path (from output_root=..., else $IWAE_OUTPUT_ROOT, else ./outputs), so no
    job's directory depends on the working directory of whatever process runs it, and check it is writable
    before Hydra creates anything below it."""
    given = [a for a in args if a.startswith("output_root=")]
    value = (
        given[-1].split("=", 1)[1].strip("'\"") if given else os.environ.get("IWAE_OUTPUT_ROOT", "outputs")
    )
    if "${" in value:  # an interpolation: leave it to Hydra
        return args
    root = Path(value).expanduser().absolute()
    if not INSPECTION_FLAGS.intersection(args):  # --help, --cfg job ... write nothing
        try:
            root.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=root).close()
        except OSError as e:
            raise IwaeError(
                f"cannot write to the output directory {root} ({e.strerror or e}): choose a writable one with "
                "output_root=... or IWAE_OUTPUT_ROOT"
            ) from None
    quoted = str(root) if re.fullmatch(r"[\w./+-]+", str(root)) else f"'{root}'"  # Hydra's override grammar
    return [a for a in args if not a.startswith("output_root=")] + [f"output_root={quoted}"]


def run_hydra(command: str, task_path: str, config_name: str, args: list[str]) -> None:
    """Run `task_path` ("module:function") as a Hydra app with `args` as its command line."""
    module_name, function_name = task_path.split(":")
    task = getattr(importlib.import_module(f"iwae_cli.{module_name}"), function_name)
    try:
        args = with_absolute_output_root(quote_numeric_choices(args))
        if command == "train":
            args = grouped_arguments(args)
    except IwaeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(e.exit_code) from None
    saved = sys.argv
    sys.argv = [f"iwae {command}", *args]
    try:
        hydra.main(version_base="1.3", config_path="pkg://iwae_cli.conf", config_name=config_name)(task)()
    except ValueError as e:  # e.g. Hydra's "--cfg is not supported with --multirun"
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    finally:
        sys.argv = saved


def hydra_command(name: str, task_path: str, config_name: str, summary: str, example: str) -> None:
    """Register `iwae <name>` as a Hydra app (config `iwae_cli/conf/<config_name>.yaml`)."""

    def command(ctx: typer.Context) -> None:
        run_hydra(name, task_path, config_name, list(ctx.args))

    command.__doc__ = f"{summary} Example: {example}  (`iwae {name} --help` lists the config groups)"
    app.command(name, context_settings=HYDRA_CONTEXT, add_help_option=False)(command)


hydra_command(
    "train",
    "tasks:train_task",
    "train",
    "Train a model on the paper's schedule (resumes its run).",
    "iwae train dataset=mnist layers=2 model=iwae k=50",
)
hydra_command(
    "eval-nll",
    "tasks:eval_nll_task",
    "eval_nll",
    "Estimate a run's test NLL with k=5000 samples.",
    "iwae eval-nll run=outputs/runs/mnist/L1-iwae-k5/quick-text-paper-sum-seed0",
)
hydra_command(
    "active-units",
    "tasks:active_units_task",
    "active_units",
    "Count a run's active latent units.",
    "iwae active-units run=outputs/runs/mnist/L1-iwae-k5/quick-text-paper-sum-seed0",
)
hydra_command(
    "switch-objective",
    "tasks:switch_objective_task",
    "switch_objective",
    "Continue a finished run with another objective (Table 2).",
    "iwae switch-objective run=outputs/runs/mnist/L1-vae-k1/quick-text-paper-sum-seed0 model=iwae k=50",
)
hydra_command(
    "table1",
    "tables:table1_task",
    "table1",
    "Regenerate Table 1 (all cells, one sweep) with the paper's numbers.",
    "iwae table1 profile=quick",
)
hydra_command(
    "table2",
    "tables:table2_task",
    "table2",
    "Regenerate Table 2 (switching objectives).",
    "iwae table2 profile=quick",
)
hydra_command(
    "table-extra",
    "tables:table_extra_task",
    "table_extra",
    "Compare newer estimators/bounds (STL, DReG, MIWAE, CIWAE, PIWAE, RWS) with VAE and IWAE.",
    "iwae table-extra seeds=[0,1,2]",
)
hydra_command(
    "grad-snr",
    "snr:grad_snr_task",
    "grad_snr",
    "Gradient signal-to-noise ratio of encoder/decoder vs k.",
    "iwae grad-snr run=outputs/runs/mnist/L1-iwae-k50/quick-text-paper-sum-seed0",
)
hydra_command(
    "bench",
    "bench:bench_task",
    "bench",
    "Benchmark training and evaluation against the matmul ceiling.",
    "iwae bench min_seconds=1",
)


@app.command("runs")
def runs_command(
    root: Path = typer.Option(
        Path("outputs"), envvar="IWAE_OUTPUT_ROOT", help="The output root (holds runs/)."
    ),
) -> None:
    """List run directories with their configuration and state. Example: iwae runs --root outputs"""
    from .runs import describe_runs

    typer.echo(describe_runs(root))


def main() -> None:
    """Console-script entry point."""
    app()
