"""The `iwae` command line: Typer routes subcommands; experiment subcommands hand their arguments to Hydra.

Everything after an experiment subcommand's name goes to Hydra untouched, so overrides, `-m` sweeps, launchers,
`--cfg job`, `--info` and Hydra's `--help` (which lists the config groups) work exactly as in any Hydra app.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from iwae_cli.cli.data import data_app
from iwae_cli.errors import ConfigError, IwaeError

# Only Typer and the light modules above load before a command runs: `iwae --help` and `iwae runs --help` must
# answer at once, so Hydra, torch and the task modules are imported inside the commands that use them
# (tests/e2e/test_cli_startup.py checks the import graph).

app = typer.Typer(
    # \b keeps the example's lines as written (Click would rewrap them and split "active-units" at its hyphen)
    help="Reproduce and extend 'Importance Weighted Autoencoders' (Burda et al., ICLR 2016).\n\n"
    "\b\nExample: iwae train model=iwae k=50\nthen:    iwae eval-nll, iwae active-units, iwae runs",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(data_app, name="data")


def show_version(given: bool) -> None:
    """`iwae --version`: the installed version, then exit."""
    if given:
        from iwae_cli import __version__

        typer.echo(f"iwae {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: bool = typer.Option(
        False, "--version", callback=show_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """The options before a command's name."""


# Typer must not parse these commands' arguments, nor claim --help: run_hydra answers it (cli/help.py).
HYDRA_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
HELP_FLAGS = {"--help", "-h"}


def run_hydra(command: str, task_path: str, config_name: str, args: list[str]) -> None:
    """Run `task_path` ("module:function") as a Hydra app with `args` as its command line; `--help` (`-h`) is
    answered here, from the command's config files, without loading Hydra (`--hydra-help`: Hydra's own)."""
    if HELP_FLAGS.intersection(args):
        from iwae_cli.cli.help import command_help

        typer.echo(command_help(command, config_name))
        return
    import hydra

    from iwae_cli.cli.arguments import quote_numeric_choices, with_absolute_output_root
    from iwae_cli.cli.group_sweep import grouped_arguments
    from iwae_cli.cli.overrides import check_overrides
    from iwae_cli.cli.profiles import with_profile
    from iwae_cli.cli.search import search_arguments

    task = lazy_task(task_path)
    try:
        args = with_profile(command, args)  # first: what it writes, the checks below see as the user's
        args = quote_numeric_choices(args)
        check_overrides(command, config_name, args)  # a mistake is one line, before anything is written
        args = with_absolute_output_root(args)
        if command == "train":
            args = grouped_arguments(search_arguments(args))
    except IwaeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(e.exit_code) from None
    if "--hydra-help" in args:  # Hydra's page of its own options composes without the command's settings
        args = ["--hydra-help"]
    saved = sys.argv
    sys.argv = [f"iwae {command}", *args]
    try:
        hydra.main(version_base="1.3", config_path="pkg://iwae_cli.conf", config_name=config_name)(task)()
    except ValueError as e:  # e.g. Hydra's "--cfg is not supported with --multirun"
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    finally:
        sys.argv = saved


def lazy_task(task_path: str) -> Callable[[Any], Any]:
    """The task `task_path` ("module:function") names, its module imported only when Hydra calls it: Hydra's
    --help, --cfg and --info never do, and need not wait for torch. The stand-in carries the task's module and
    name, from which Hydra names the job (hydra.job.name, the job's log file).

    It runs the task with its log lines kept clear of the progress bars (core/runtime.py, logs_clear_of_bars)
    and each naming the run it is about (runs/log_context.py, runs_named_on_console): only here, once Hydra has
    set up the job's logging, do the console handlers to change exist."""
    module_name, function_name = task_path.split(":")
    module = f"iwae_cli.{module_name}"

    def task(cfg: Any) -> Any:
        from iwae_cli.core.runtime import logs_clear_of_bars
        from iwae_cli.runs.log_context import runs_named_on_console

        with logs_clear_of_bars(), runs_named_on_console():
            return getattr(importlib.import_module(module), function_name)(cfg)

    task.__module__, task.__name__, task.__qualname__ = module, function_name, function_name
    return task


def hydra_command(name: str, task_path: str, config_name: str, summary: str, example: str) -> None:
    """Register `iwae <name>` as a Hydra app (config `conf/<config_name>.yaml`)."""

    def command(ctx: typer.Context) -> None:
        run_hydra(name, task_path, config_name, list(ctx.args))

    command.__doc__ = f"{summary} Example: {example}  (`iwae {name} --help` lists its settings)"
    app.command(name, context_settings=HYDRA_CONTEXT, add_help_option=False)(command)


hydra_command(
    "train",
    "tasks.train:train_task",
    "train",
    "Train a model on the paper's schedule (resumes its run).",
    "iwae train dataset=mnist layers=2 model=iwae k=50",
)
hydra_command(
    "eval-nll",
    "tasks.evaluate:eval_nll_task",
    "eval_nll",
    "Estimate a run's test NLL with k=5000 samples.",
    "iwae eval-nll run=outputs/runs/mnist/L1-iwae-k5/quick-text-paper-sum-seed0",
)
hydra_command(
    "active-units",
    "tasks.evaluate:active_units_task",
    "active_units",
    "Count a run's active latent units.",
    "iwae active-units run=outputs/runs/mnist/L1-iwae-k5/quick-text-paper-sum-seed0",
)
hydra_command(
    "switch-objective",
    "tasks.switch:switch_objective_task",
    "switch_objective",
    "Continue a run with another objective (Table 2).",
    "iwae switch-objective run=outputs/runs/mnist/L1-vae-k1/quick-text-paper-sum-seed0 model=iwae k=50",
)
hydra_command(
    "table1",
    "tasks.tables.table1:table1_task",
    "table1",
    "Regenerate Table 1 beside the paper's numbers.",
    "iwae table1 profile=quick",
)
hydra_command(
    "table2",
    "tasks.tables.table2:table2_task",
    "table2",
    "Regenerate Table 2 (switching objectives).",
    "iwae table2 profile=quick",
)
hydra_command(
    "frontier",
    "tasks.frontier:frontier_task",
    "frontier",
    "Validation NLL against training time, per recipe.",
    "iwae frontier 'marks=[1,5,10]'",
)
hydra_command(
    "table-extra",
    "tasks.tables.extra:table_extra_task",
    "table_extra",
    "Compare STL, DReG, MIWAE, CIWAE, PIWAE, RWS with IWAE.",
    "iwae table-extra seeds=[0,1,2]",
)
hydra_command(
    "grad-snr",
    "tasks.snr:grad_snr_task",
    "grad_snr",
    "Gradient signal-to-noise ratio of encoder/decoder vs k.",
    "iwae grad-snr run=outputs/runs/mnist/L1-iwae-k50/quick-text-paper-sum-seed0",
)
hydra_command(
    "bench",
    "tasks.bench:bench_task",
    "bench",
    "Time training and evaluation against the matmul ceiling.",
    "iwae bench min_seconds=1",
)


@app.command("runs")
def runs_command(
    settings: list[str] | None = typer.Argument(
        None,
        metavar="KEY=VALUE",
        help="Filters (objective=iwae k=5,50 state=done ...), sort=<column>[,...] (-<column>: descending), "
        "output_root=<dir>.",
        show_default=False,
    ),
    root: Path = typer.Option(
        Path("outputs"), envvar="IWAE_OUTPUT_ROOT", help="The output root (holds runs/); as output_root=..."
    ),
    remove: bool = typer.Option(
        False, "--remove", help="Delete the runs listed, refusing running ones (without --yes: only say which)."
    ),
    yes: bool = typer.Option(False, "--yes", help="With --remove: really delete them."),
) -> None:
    """List run directories with their configuration and state.
    Example: iwae runs objective=iwae,vae k=50 sort=test_nll
    (iwae runs --remove state=failed: which runs would go; add --yes to delete them)"""
    from iwae_cli.runs.listing import describe_runs

    try:
        where = listing_arguments(settings or [])
        root = Path(where.pop("output_root", [str(root)])[-1]).expanduser()
        if yes and not remove:
            raise ConfigError("--yes confirms --remove: write iwae runs --remove --yes KEY=VALUE ...")
        if remove:
            from iwae_cli.cli.remove_runs import remove_command

            raise typer.Exit(remove_command(root, where, where.pop("sort", None), really=yes))
        typer.echo(describe_runs(root, where, where.pop("sort", None)))
    except IwaeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(e.exit_code) from None


@app.command("compare", short_help="A rerun's table beside the table of record.")
def compare(
    table: Path = typer.Argument(..., metavar="TABLE", help="Your table1.csv or table2.csv (outputs/tables/<profile>/...)."),
    record: Path | None = typer.Option(
        None, "--record", help="The table of record (default: docs/results/<profile>/ of this repository)."
    ),
    level: float = typer.Option(0.05, "--level", help="The t test's level: the share of cells flagged by chance."),
) -> None:
    """Compare a rerun's table with the table of record, cell by cell.
    Which cells of a rerun's table1.csv or table2.csv differ from the table of record by more than seeds vary.
    Example: iwae compare outputs/tables/fast/table1.csv   (exit 1 when a cell differs)"""
    from iwae_cli.cli.compare import compare_command

    try:
        raise typer.Exit(compare_command(table, record, level))
    except IwaeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(e.exit_code) from None


def listing_arguments(args: list[str]) -> dict[str, list[str]]:
    """`iwae runs`' key=value arguments, each value split at its commas (a later key replaces an earlier one);
    output_root=... keeps its commas."""
    chosen: dict[str, list[str]] = {}
    for arg in args:
        key, equals, value = arg.partition("=")
        if not equals or not key:
            raise ConfigError(
                f"iwae runs takes key=value arguments (filters, sort=..., output_root=...), got {arg!r}"
            )
        value = value.strip("'\"")
        chosen[key] = [value] if key == "output_root" else [v.strip() for v in value.split(",") if v.strip()]
    return chosen


def main() -> None:
    """Console-script entry point. A usage mistake Click catches (an unknown command or option) is one line, as
    every other mistake is, with where to read the usage: Click's own report spans four."""
    try:  # Typer >= 0.22 carries its own copy of Click
        from typer._click import exceptions as click_errors
    except ImportError:
        from click import exceptions as click_errors

    try:
        code = app(standalone_mode=False, prog_name="iwae")  # also under python -m iwae_cli
    except click_errors.NoArgsIsHelpError as e:  # `iwae` alone: the help, as Click prints it
        e.show()
        sys.exit(e.exit_code)
    except click_errors.UsageError as e:
        where = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
        typer.echo(f"error: {e.format_message()}{where}", err=True)
        sys.exit(e.exit_code)
    except typer.Abort:  # Ctrl-C at a prompt
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
