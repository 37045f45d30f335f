"""The objective registry: every objective is declared once, as one decorated function whose signature names its
parameters (objectives.py holds the declarations).

    @bound_objective("ciwae", check=beta_in_unit_interval)
    def combined_bound(log_w, beta: float = 0.5): ...          # a bound of the log weights, [k, batch] -> [batch]

    @objective("piwae", check=groups_divide_k)
    def piwae(model, x, k, noise=None, *, groups: int = 5): ...  # a full estimator, -> Estimate

A bound of the log weights gets its objective derived, Estimate(bound(log w), -sum of the bound over the
minibatch), and is listed in LOG_WEIGHT_BOUNDS: the compiled training step (iwae_cli.training.step) needs only that function.
Estimators with stop-gradients or a separate encoder loss are declared whole and train with the plain step.
A config's `model` node is the objective's `name` plus its parameters: `bind` passes those as keyword
arguments, refuses a key the signature does not name, and runs the declaration's `check(k, **params)`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import torch

from iwae_cli.errors import ConfigError


@dataclass
class Estimate:
    """One minibatch's bound per example ([batch]) and the surrogate loss(es) to differentiate."""

    bound: torch.Tensor
    loss: torch.Tensor
    encoder_loss: torch.Tensor | None = None


Noise = Sequence[torch.Tensor] | None
Objective = Callable[..., Estimate]  # (model, x, k, noise, **params) -> Estimate
LogWeightBound = Callable[..., torch.Tensor]  # (log_w [k, batch], **params) -> [batch]
Check = Callable[..., None]  # (k, **params) -> None, raising ConfigError


@dataclass(frozen=True)
class Declaration:
    """A registered objective: the estimator, its parameters' defaults (what its conf/model YAML may set) and
    the check of their values against k."""

    name: str
    objective: Objective
    parameters: dict[str, Any]
    check: Check | None = None


OBJECTIVES: dict[str, Declaration] = {}
LOG_WEIGHT_BOUNDS: dict[str, LogWeightBound] = {}  # the objectives the compiled step can train


def _defaults(fn: Callable, skip: int) -> dict[str, Any]:
    """fn's parameters after its first `skip` (the data arguments), with their defaults."""
    return {p.name: p.default for p in list(inspect.signature(fn).parameters.values())[skip:]}


def _register(declaration: Declaration) -> None:
    if declaration.name in OBJECTIVES:
        raise ValueError(f"objective {declaration.name} is declared twice")
    OBJECTIVES[declaration.name] = declaration


def objective(name: str, check: Check | None = None) -> Callable[[Objective], Objective]:
    """Register `fn(model, x, k, noise=None, *, **params) -> Estimate` as the objective `name`."""

    def register(fn: Objective) -> Objective:
        _register(Declaration(name, fn, _defaults(fn, skip=4), check))
        return fn

    return register


def bound_objective(name: str, check: Check | None = None) -> Callable[[LogWeightBound], LogWeightBound]:
    """Register `bound(log_w, **params)` as the objective `name`: maximise bound(log w) by its plain gradient
    (the loss is minus its sum over the minibatch). The bound itself is returned unchanged."""

    def register(bound: LogWeightBound) -> LogWeightBound:
        def derived(model, x: torch.Tensor, k: int, noise: Noise = None, **params: Any) -> Estimate:
            value = bound(model.log_weights(x, k, noise), **params)
            return Estimate(value, -value.sum())

        _register(Declaration(name, derived, _defaults(bound, skip=1), check))
        LOG_WEIGHT_BOUNDS[name] = bound
        return bound

    return register


def _typed(key: str, value: Any, default: Any) -> Any:
    """`value` as the default's type (int or float), if it is one exactly (5 for an int, not 2.5 or True)."""
    kind = type(default)
    with suppress(TypeError, ValueError):
        if not isinstance(value, bool) and kind(value) == value:
            return kind(value)
    raise ConfigError(f"model.{key} must be of type {kind.__name__}, got {value!r}")


def bind(name: str, given: Mapping[str, Any], k: int) -> tuple[Declaration, dict[str, Any]]:
    """The objective `name` and its parameters: the `given` ones (absent ones take the signature's defaults),
    each one the signature names, typed, and checked against k."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective model={name}; choose one of {', '.join(OBJECTIVES)}")
    declaration = OBJECTIVES[name]
    unknown = sorted(given.keys() - declaration.parameters.keys())
    if unknown:
        accepted = ", ".join(f"model.{p}" for p in declaration.parameters) or "none"
        raise ConfigError(f"model={name} has no parameter model.{unknown[0]} (it takes: {accepted})")
    params = {p: _typed(p, given.get(p, default), default) for p, default in declaration.parameters.items()}
    if declaration.check is not None:
        declaration.check(k, **params)
    return declaration, params
