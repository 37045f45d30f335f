"""`iwae <command> --help`: what the command takes, read from its config files without Hydra.

Hydra's own help composes the config (about a second with Hydra imported) and lists every config group in the
package, including groups the command has no use for. This page is read from the YAML text instead: the
command's header (`hydra.help.header` in conf/<command>.yaml), the config groups its defaults list takes (with
the configs it includes, such as conf/common.yaml) and their options, `profile=` where the command takes one
(cli/profiles.py), and its settings with their defaults and the comments beside them, wrapped at 80 columns.
`iwae <command> --hydra-help` still shows Hydra's, `--cfg job` the composed config.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

import yaml

from iwae_cli.cli.profiles import PROFILE_OVERRIDES, TABLE_COMMANDS, override_key
from iwae_cli.specs.profiles import conf_dir, load_profile, profile_names

CONF = conf_dir()
WIDTH = 80
COLUMN = 26  # where a setting's comment starts
# Keys of a config file that are not settings: its defaults list and Hydra's own block
NOT_SETTINGS = ("defaults", "hydra")
KEY_LINE = re.compile(r"(\w+):(?:\s+|$)(.*)")


@dataclass
class Setting:
    """One key of a config file: its dotted name, its default as written, and the comment beside it."""

    key: str
    value: str
    comment: str = ""
    items: list[str] = field(default_factory=list)  # a block list's items (`cells:` then `- {...}` lines)

    def shown(self) -> str:
        value = f"[{', '.join(self.items)}]" if self.items else self.value
        return f"{self.key}={value}" if value else self.key


@dataclass
class ConfigFile:
    """What a config file holds for its help: the groups its defaults list chooses (group, default option, the
    comment beside it), the configs it includes by name, and its settings."""

    groups: list[tuple[str, str, str]]
    includes: list[str]
    settings: list[Setting]


def split_comment(text: str) -> tuple[str, str]:
    """`value  # comment` -> (value, comment); a # inside quotes is the value's."""
    quote = None
    for i, char in enumerate(text):
        if char in "'\"" and quote in (None, char):
            quote = None if quote else char
        elif char == "#" and quote is None and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), ""


def read_defaults(lines: list[str]) -> tuple[list[tuple[str, str, str]], list[str]]:
    """A defaults list's entries: (group, option, comment) per group chosen and the names of included configs;
    Hydra's own groups (`override hydra/...`) and _self_ are left out."""
    groups, includes = [], []
    for line in lines:
        entry, comment = split_comment(line.strip().removeprefix("-").strip())
        if not entry or entry.startswith("override ") or entry == "_self_":
            continue
        group, colon, option = entry.partition(":")
        if colon:
            groups.append((group.strip(), option.strip().strip("'\""), comment))
        else:
            includes.append(entry)
    return groups, includes


def read_config(name: str) -> ConfigFile:
    """conf/<name>.yaml's defaults list and settings, read line by line to keep the comments."""
    settings: list[Setting] = []
    parents: list[tuple[int, str]] = []  # the (indent, key) of the blocks the current line is inside
    defaults: list[str] = []
    section, commented = "", False  # the top-level key the line is under; whether the last setting has a comment
    for line in CONF.joinpath(f"{name}.yaml").read_text().splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped or (stripped.startswith("#") and indent == 0):
            commented = commented and not stripped
            continue
        if indent == 0:
            section, parents = stripped.split(":")[0], []
        if section in NOT_SETTINGS:
            if section == "defaults" and stripped.startswith("-"):
                defaults.append(stripped)
            continue
        if stripped.startswith("#"):  # a comment continued on the lines below its setting's
            if commented:
                settings[-1].comment += " " + stripped.lstrip("#").strip()
            continue
        match = KEY_LINE.fullmatch(stripped)
        if match is None:  # an item of a block list
            settings[-1].items.append(split_comment(stripped.removeprefix("-").strip())[0])
            continue
        while parents and parents[-1][0] >= indent:
            parents.pop()
        value, comment = split_comment(match[2])
        settings.append(Setting(".".join([k for _, k in parents] + [match[1]]), value, comment))
        commented = bool(comment)
        if not value:
            parents.append((indent, match[1]))
    groups, includes = read_defaults(defaults)
    # a block that holds a mapping is shown by its keys (and itself only where a comment says what it is for)
    return ConfigFile(groups, includes, [s for s in settings if s.value or s.items or s.comment])


def command_help(command: str, config_name: str) -> str:
    """The help page of `iwae <command>` (config conf/<config_name>.yaml)."""
    own = read_config(config_name)
    included = [read_config(name) for name in own.includes]
    groups = [g for c in (own, *included) for g in c.groups]
    hydra_help = (yaml.safe_load(CONF.joinpath(f"{config_name}.yaml").read_text()).get("hydra") or {}).get(
        "help", {}
    )
    parts = [
        wrapped_text(hydra_help.get("header", f"iwae {command}")),
        wrapped_text(
            f"Usage: iwae {command} [KEY=VALUE]... (-m KEY=A,B: one job per value; --cfg job: the composed "
            "config; --hydra-help: Hydra's options, such as hydra/launcher=...)"
        ),
        "Config groups (GROUP=OPTION; the default in brackets):\n"
        + "\n".join(group_line(*g) for g in groups)
        + profile_line(command),
        "Settings (KEY=VALUE, with the default):\n" + "\n".join(setting_line(s) for s in own.settings),
    ]
    shared = [s for c in included for s in c.settings]
    if shared:
        parts.append("Shared settings:\n" + "\n".join(setting_line(s) for s in shared))
    footer = re.sub(r"\$\{(\w+)\}", r"<\1>", hydra_help.get("footer") or "")
    if footer:
        parts.append(wrapped_text(footer))
    return "\n\n".join(parts)


def options(group: str) -> list[str]:
    """The configs of group `group` (conf/<group>/*.yaml), numbers in numeric order."""
    names = [p.name[: -len(".yaml")] for p in CONF.joinpath(group).iterdir() if p.name.endswith(".yaml")]
    return sorted(names, key=lambda n: (not n.isdigit(), len(n) if n.isdigit() else 0, n))


def group_line(group: str, default: str, comment: str) -> str:
    listed = ", ".join(f"[{o}]" if o == default else o for o in options(group))
    return entry(group, listed + (f"; {comment}" if comment else ""))


def profile_line(command: str) -> str:
    """`profile=` for a command that is given it by cli/profiles.py (the tables list it as a group of theirs)."""
    if command in TABLE_COMMANDS or command not in PROFILE_OVERRIDES:
        return ""
    keys = [override_key(o) for o in PROFILE_OVERRIDES[command](load_profile(profile_names()[0]))]
    sets = f"sets {', '.join(keys)}" if keys else "sets nothing here"
    return "\n" + entry(
        "profile",
        f"{', '.join(profile_names())} (none by default): {sets} as a table command's job is given "
        "them; what you write yourself wins",
    )


def setting_line(setting: Setting) -> str:
    return entry(setting.shown(), setting.comment)


def entry(name: str, text: str) -> str:
    """`  name   text`, the text from COLUMN on (on the next line when the name is longer), wrapped."""
    indent = " " * COLUMN
    if len(name) + 3 > COLUMN:
        head = textwrap.fill(name, WIDTH, initial_indent="  ", subsequent_indent="    ", break_on_hyphens=False)
        return head + ("\n" + wrapped(text, indent, indent) if text else "")
    return wrapped(text, f"  {name:<{COLUMN - 3}} ", indent) if text else f"  {name}"


def wrapped(text: str, first: str, rest: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False)


def wrapped_text(text: str) -> str:
    """Text whose lines are kept as written, each wrapped at WIDTH (its continuation indented two columns more
    than the line)."""
    lines = []
    for line in text.strip().splitlines():
        lead = line[: len(line) - len(line.lstrip())]
        lines.append(wrapped(line.strip(), lead, lead + "  ") if line.strip() else "")
    return "\n".join(lines)
