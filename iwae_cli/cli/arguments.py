"""An experiment command's arguments, made safe for Hydra before it sees them: `layers=` choices quoted (Hydra
reads a bare 2 as an int, which no config group accepts) and `output_root` pinned to a writable absolute path."""

from __future__ import annotations

import os
import tempfile
from importlib.resources import files
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob
from hydra.errors import HydraException

from iwae_cli.errors import ConfigError, IwaeError, first_line
from iwae_cli.tasks.job import hydra_quoted

LAYERS_SWEEPS = "layers=1,2, layers='choice(1,2)', layers='range(1,3)' or layers='glob(*)'"


def layers_options() -> list[str]:
    """The packaged `layers` configs ("1", "2", ...), in numeric order."""
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
    rest = [a for a in args if not a.startswith("output_root=")]
    # Hydra reads its overrides as one run of words, so `k=5 --cfg job output_root=...` would be refused after the
    # flag: the pinned override ends the first run of overrides (the end when there is none), and a resume hint
    # built from these words still reads in the user's order.
    end = next((i for i, a in enumerate(rest) if _is_override(a)), len(rest))
    while end < len(rest) and _is_override(rest[end]):
        end += 1
    return rest[:end] + [f"output_root={hydra_quoted(str(root))}"] + rest[end:]


def _is_override(arg: str) -> bool:
    return "=" in arg and not arg.startswith("-")
