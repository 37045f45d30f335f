"""A run's identity: what the trained model depends on, and nothing else, taken from the validated, typed spec.

Two things are derived from it. The fingerprint (version 2) is stored in every checkpoint and must match before
a run is resumed. The run's name (its directory under <output_root>/runs) reads as the settings it was trained
with: `mnist/L1-vr-a0.5-k5/quick-text-paper-sum-seed0` is one stochastic layer, the VR bound with alpha 0.5 and
k=5, the quick schedule, the paper's text, the paper's Adam, the summed loss and seed 0. Each part is the name
of the config file it came from where its typed values are that file's, else that name followed by what differs
(`quick-batch_size_100`, or a digest where a list differs: `quick-custom-1a2b3c4d`), so two identities never share
a name and a setting the run does not use cannot change it.

Where the run runs (device, threads, compile, output root, trackers) and how it is evaluated are recorded in the
run, never in its identity: moving a run to a GPU or evaluating it with another k resumes the same run.

Version 1 (before this module): the fingerprint was the raw config nodes IDENTITY_SOURCES resolved, and the name
was interpolated from raw YAML. Such runs are recognised by typing their stored values the same way
(specs/run.py, `typed_v1`), and found under their old names (`legacy_run_name`) when the new name differs.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from omegaconf import DictConfig, OmegaConf

from iwae_cli.core.optim import OptimSpec
from iwae_cli.core.setting_names import IDENTITY_SOURCES
from iwae_cli.training.spec import DataSpec, ModelSpec, ObjectiveSpec, Schedule

VERSION = 2
# IDENTITY_SOURCES (core/setting_names.py): the config nodes a run's identity is read from (and, as they were,
# version 1's fingerprint); a command that continues a run (switch-objective) takes these from it.
__all__ = ["IDENTITY_SOURCES", "VERSION"]


@dataclass(frozen=True)
class TrainedParts:
    """What the trained model depends on, typed and checked (specs/run.py typed_parts builds it)."""

    data: DataSpec
    model: ModelSpec
    objective: ObjectiveSpec
    schedule: Schedule
    optim: OptimSpec
    parent: str | None


def identity(spec: TrainedParts) -> dict[str, Any]:
    """The fingerprint of version 2: the typed settings that change the trained model, as plain JSON values."""
    arch, objective, schedule = spec.model.arch, spec.objective, spec.schedule
    return {
        "version": VERSION,
        "dataset": spec.data.name,
        "holdout": spec.data.holdout,
        "arch": {
            "latent_units": list(arch.latent_units),
            "encoder_hidden": [list(layer) for layer in arch.encoder_hidden],
            "decoder_hidden": [list(layer) for layer in arch.decoder_hidden],
            "same_seed_init": spec.model.same_seed_init,
        },
        "objective": {"name": objective.name, "params": dict(objective.params), "k": objective.k},
        "loss_reduction": objective.reduction,
        "schedule": {
            "batch_size": schedule.batch_size,
            "passes": list(schedule.passes),
            "learning_rates": list(schedule.learning_rates),
            "train_examples": schedule.train_examples,
            "anneal": schedule.anneal,
            "min_learning_rate": schedule.min_learning_rate,
            "warmup_passes": schedule.warmup_passes,
        },
        "optim": {"variant": spec.optim.variant, "betas": list(spec.optim.betas), "eps": spec.optim.eps},
        "seed": spec.model.seed,
        "parent": spec.parent,
    }


def differences(stored: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """What differs between a stored identity and this run's, one `setting: stored vs expected` each, named down
    to the leaf (`objective.k: 5 in the checkpoint vs 50 now`). A parent recorded as an absolute path (version
    1) matches the same run named relative to the output root."""
    old, new = leaves(stored), leaves(expected)
    out = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        same_parent = key == "parent" and isinstance(a, str) and isinstance(b, str) and a.endswith("/" + b)
        if a != b and not same_parent:
            out.append(f"{key}: {a} in the checkpoint vs {b} now")
    return out


def leaves(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict's values by dotted path (lists stay whole)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# ---- names -------------------------------------------------------------------------------------------------


def run_name(cfg: DictConfig, spec: TrainedParts) -> str:
    """The run's directory under <output_root>/runs (see the module's docstring)."""
    return (
        f"{spec.data.name}/{arch_label(spec.model)}-{objective_label(spec.objective)}/"
        f"{schedule_label(cfg.schedule)}-{protocol_label(cfg)}-{optim_label(cfg.optim)}-"
        f"{spec.objective.reduction}-seed{spec.model.seed}"
    )


def objective_label(objective: ObjectiveSpec) -> str:
    """`vr-a0.5-k5`: the objective, each of its parameters and k (a switched run's directory)."""
    params = "".join(f"-{short}{plain(v)}" for short, v in short_params(objective.params).items())
    return f"{objective.name}{params}-k{objective.k}"


def short_params(params: dict[str, Any]) -> dict[str, Any]:
    """Each parameter under the shortest prefix of its name that no other parameter of the objective shares
    (alpha -> a, beta -> b, groups -> g)."""
    names = list(params)

    def shortest(name: str) -> str:
        for n in range(1, len(name) + 1):
            if not any(other != name and other.startswith(name[:n]) for other in names):
                return name[:n]
        return name

    return {shortest(name): params[name] for name in names}


def plain(value: Any) -> str:
    """A value as a directory name shows it: numbers exactly (repr), booleans as true/false."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def label(name: str, values: dict[str, Any], shipped: dict[str, Any] | None) -> str:
    """`name` where `values` are the shipped file's (or no such file ships: a user's own file names itself);
    else `name-<key>_<value>` for each differing scalar, or `name-custom-<digest>` where a list differs."""
    if shipped is None or values == shipped:
        return name
    differing = {key: value for key, value in values.items() if shipped.get(key) != value}
    if not all(readable(value) for value in differing.values()):
        digest = hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]
        return f"{name}-custom-{digest}"
    return name + "".join(f"-{key}_{plain(value)}" for key, value in differing.items())


def readable(value: Any) -> bool:
    """Whether a value can stand in a directory name as it is: a number, a boolean, null or a plain word."""
    if isinstance(value, str):
        return re.fullmatch(r"[A-Za-z0-9.]+", value) is not None
    return isinstance(value, int | float | bool) or value is None


def shipped(group: str, name: str) -> DictConfig | None:
    """conf/<group>/<name>.yaml as a config, or None where iwae ships no such file."""
    path = resources.files("iwae_cli.conf").joinpath(group, f"{name}.yaml")
    if not re.fullmatch(r"[\w.-]+", name) or not path.is_file():
        return None
    return OmegaConf.create(path.read_text())


def schedule_values(node: Any) -> dict[str, Any]:
    """What a schedule trains with (its switch stages belong to switch-objective's run, not this one)."""
    return {
        "batch_size": node.get("batch_size"),
        "passes": list(node.get("passes") or []),
        "learning_rates": [float(r) for r in node.get("learning_rates") or []],
        "train_examples": node.get("train_examples"),
        "anneal": node.get("anneal", "step"),
        "min_learning_rate": float(node.get("min_learning_rate", 0.0)),
        "warmup_passes": float(node.get("warmup_passes", 0)),
    }


def schedule_label(node: Any) -> str:
    """The schedule part of a run's name."""
    file = shipped("schedule", str(node.name))
    return label(str(node.name), schedule_values(node), None if file is None else schedule_values(file))


def optim_values(node: Any) -> dict[str, Any]:
    return {"variant": node.get("variant"), "beta1": node.get("beta1"), "beta2": node.get("beta2"), "eps": node.get("eps")}


def optim_label(node: Any) -> str:
    """The optimiser part of a run's name."""
    file = shipped("optim", str(node.name))
    return label(str(node.name), optim_values(node), None if file is None else optim_values(file))


def protocol_values(root: Any) -> dict[str, Any]:
    """What a protocol changes in training: rounded rates, a held-out validation set, the authors' seeding."""
    node = root.get("protocol") or {}
    return {
        "round_learning_rates": bool(node.get("round_learning_rates", False)),
        "holdout": node.get("holdout", True),
        "same_seed_init": bool((root.get("arch") or {}).get("same_seed_init", False)),
    }


def protocol_label(cfg: Any) -> str:
    """The protocol part of a run's name (text or code, or what differs from it)."""
    name = str((cfg.get("protocol") or {}).get("name", "text"))
    file = shipped("protocol", name)
    return label(name, protocol_values(cfg), None if file is None else protocol_values(file))


def arch_label(model: ModelSpec) -> str:
    """`L<stochastic layers>`, marked where the sizes are not conf/layers/<n>.yaml's."""
    arch = model.arch
    n = len(arch.latent_units)
    values = {key: value for key, value in asdict(arch).items() if key != "x_dim"}
    file = shipped("layers", str(n))
    standard = None
    if file is not None:
        standard = {
            "latent_units": tuple(file.latent_units),
            "encoder_hidden": tuple(tuple(layer) for layer in file.encoder_hidden),
            "decoder_hidden": tuple(tuple(layer) for layer in file.decoder_hidden),
        }
    if standard is None or values == standard:
        return f"L{n}"
    digest = hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]
    return f"L{n}-custom-{digest}"


# ---- version 1 ---------------------------------------------------------------------------------------------


def legacy_schedule_label(node: Any) -> str:
    """Version 1's schedule part: the name, or `<name>-custom-<digest of the raw values, switch stages too>`."""
    values = OmegaConf.to_container(OmegaConf.create(node), resolve=True) if not isinstance(node, dict) else dict(node)
    name = str(values.pop("name"))
    file = shipped("schedule", name)
    if file is None:
        return name
    standard = OmegaConf.to_container(file, resolve=True)
    standard.pop("name", None)
    if values == standard:
        return name
    return f"{name}-custom-{hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]}"


def legacy_run_name(cfg: Any, layers_choice: str) -> str:
    """The directory version 1 named a run (conf/train.yaml's interpolation at 4a4795b)."""
    protocol = (cfg.get("protocol") or {}).get("name", "text")
    return (
        f"{cfg.dataset.name}/L{layers_choice}-{cfg.model.name}-k{cfg.k}/{legacy_schedule_label(cfg.schedule)}-"
        f"{protocol}-{cfg.optim.name}-{cfg.get('loss_reduction', 'sum')}-seed{cfg.seed}"
    )
