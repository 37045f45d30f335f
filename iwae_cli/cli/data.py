"""`iwae data ...`: download and check the data files.

The main CLI mounts this with ``app.add_typer(data_app, name="data")``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from iwae_cli.data.registry import DATASET_NAMES
from iwae_cli.errors import DataError, IwaeError

data_app = typer.Typer(
    help=f"Download and check the data files. Datasets: {', '.join(DATASET_NAMES)}. "
    "Example: iwae data download mnist",
    no_args_is_help=True,
)
_NAMES_HELP = f"{', '.join(DATASET_NAMES)} or all."

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="PATH",
        help="Data folder (holds one folder per dataset: mnist/, ...). Default: $IWAE_DATA_DIR, else ~/.cache/iwae/data.",
        show_default=False,
    ),
]


@data_app.command("download")
def download_command(
    dataset: Annotated[str, typer.Argument(help=_NAMES_HELP)] = "mnist",
    data_dir: DataDirOption = None,
    mirror: Annotated[
        list[str] | None,
        typer.Option(
            "--mirror",
            metavar="URL",
            help="Base URL to fetch from instead of the defaults (repeatable; also $IWAE_DATA_MIRROR).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Download a dataset and check its checksums. Example: iwae data download mnist --data-dir ~/data"""
    from iwae_cli.data.download import download_dataset  # here, not above: `iwae --help` need not load them
    from iwae_cli.data.loading import resolve_data_dir

    try:
        root = resolve_data_dir(data_dir)
        for name in _names(dataset):
            # a progress bar only where someone watches it; logs and captured output stay clean
            for path in download_dataset(name, root, mirrors=mirror or None, progress=sys.stderr.isatty()):
                typer.echo(f"ok {path}")
    except IwaeError as e:
        _fail(e)


_VERIFY_HELP = (
    "Check the data files against their checksums. Example: iwae data verify mnist\n\n"
    "Prints one line per file: ok, missing, or bad (with the reason). Exits with 1 if a file of a named "
    'dataset is missing or bad. With "all" (the default), a dataset none of whose files is present counts '
    "as not downloaded and is only reported; a partly present or corrupt dataset, or no dataset at all, "
    "exits with 1."
)


@data_app.command("verify", help=_VERIFY_HELP)
def verify_command(
    dataset: Annotated[str, typer.Argument(help=_NAMES_HELP)] = "all",
    data_dir: DataDirOption = None,
) -> None:
    """Check the data files of ``dataset`` and print one line per file (see ``_VERIFY_HELP``)."""
    from iwae_cli.data.download import verify_dataset
    from iwae_cli.data.loading import resolve_data_dir

    try:
        root = resolve_data_dir(data_dir)
        names = _names(dataset)
        problems, present = [], []
        for name in names:
            results = verify_dataset(name, root)
            for file_name, status in results:
                typer.echo(_status_line(root / name / file_name, status))
            if any(status != "missing" for _, status in results):
                present.append(name)
            if dataset.lower() != "all" or name in present:
                problems += [f"{name}/{f}" for f, status in results if status != "ok"]
    except IwaeError as e:
        _fail(e)
    if problems:
        typer.echo(
            f"error: {len(problems)} file(s) missing or corrupt in {root} ({', '.join(problems)}): "
            f"run `iwae data download {dataset.lower()}` to fetch them again",
            err=True,
        )
        raise typer.Exit(1)
    if not present:
        typer.echo(f"error: no dataset found in {root}: run `iwae data download {names[0]}`", err=True)
        raise typer.Exit(1)


def _names(dataset: str) -> tuple[str, ...]:
    """The datasets that ``dataset`` names ("all" names every registered one)."""
    key = dataset.lower()
    if key == "all":
        return DATASET_NAMES
    if key not in DATASET_NAMES:
        raise DataError(f"unknown dataset {dataset!r}: use one of {', '.join(DATASET_NAMES)} or all")
    return (key,)


def _status_line(path: Path, status: str) -> str:
    return f"{status} {path}" if status in ("ok", "missing") else f"bad {path}: {status}"


def _fail(e: IwaeError) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(e.exit_code)
