"""The model's parameters: every rate, share and duration, each with its source.

Parameters live in YAML files under ``trainkit/params/`` (one per domain). Each entry is::

    name:
      value: 510.4            # a number, list or mapping
      unit: per 10,000 children aged 0-17 per year
      source: "DfE, Characteristics of children in need 2024, table C1 ..."
      derivation: "621,880 referrals / 12,059,476 children (ONS mid-2023)"   # optional

or, where no published figure exists, ``assumption:`` with one sentence of reasoning instead of
``source:``. ``trainkit calibrate`` lists the assumptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from .errors import ConfigError

PARAM_FILES = (
    "population",
    "social_care",
    "care",
    "education",
    "health",
    "messiness",
    "ssda903",
    "cin",
    "research",
)


@dataclass(frozen=True)
class Parameter:
    """One parameter: its value and where it comes from."""

    key: str  # "section.name"
    value: Any
    unit: str
    source: str | None
    assumption: str | None
    derivation: str | None


class Parameters(Mapping):
    """Read-only mapping from ``"section.name"`` to value, with the metadata kept beside it."""

    def __init__(self, entries: dict[str, Parameter]):
        self._entries = dict(entries)

    def __getitem__(self, key: str) -> Any:
        try:
            return self._entries[key].value
        except KeyError:
            raise KeyError(f"no parameter named {key!r}") from None

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, key: str) -> Parameter:
        return self._entries[key]

    def assumptions(self) -> list[Parameter]:
        """Parameters with no published source, each with its reasoning."""
        return [p for p in self._entries.values() if p.assumption]

    def with_overrides(self, overrides: Mapping[str, Any]) -> Parameters:
        """A copy with some values replaced; keys and types are checked.

        Raises:
            ConfigError: naming the key that is unknown or whose value has the wrong type.
        """
        entries = dict(self._entries)
        for key, new in overrides.items():
            if key not in entries:
                near = _nearest(key, entries)
                hint = f" (did you mean {near!r}?)" if near else ""
                raise ConfigError(
                    f"config: parameters.{key} is not a parameter{hint}; "
                    "see `trainkit calibrate --list-parameters` for the names"
                )
            old = entries[key]
            _check_same_shape(f"parameters.{key}", old.value, new)
            new = _merged(old.value, new)
            entries[key] = Parameter(
                key, new, old.unit, "config override", None, f"overrides {old.value!r}"
            )
        return Parameters(entries)


def _merged(old: Any, new: Any) -> Any:
    """``new`` laid over ``old``: mappings merge key by key, anything else is replaced."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {k: _merged(old[k], new[k]) if k in new else old[k] for k in old}
    return new


def _nearest(key: str, names) -> str | None:
    import difflib

    found = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    return found[0] if found else None


def _check_same_shape(where: str, old: Any, new: Any) -> None:
    def is_num(x):
        return isinstance(x, int | float) and not isinstance(x, bool)

    if is_num(old):
        if not is_num(new):
            raise ConfigError(f"config: {where} must be a number, got {new!r}")
    elif isinstance(old, bool):
        if not isinstance(new, bool):
            raise ConfigError(f"config: {where} must be true or false, got {new!r}")
    elif isinstance(old, list):
        if not isinstance(new, list) or len(new) != len(old):
            raise ConfigError(f"config: {where} must be a list of {len(old)} values, got {new!r}")
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _check_same_shape(f"{where}[{i}]", a, b)
    elif isinstance(old, dict):
        if not isinstance(new, dict):
            raise ConfigError(f"config: {where} must be a mapping, got {new!r}")
        for k in new:
            if k not in old:
                raise ConfigError(
                    f"config: {where}.{k} is not a known key; known: {', '.join(map(str, old))}"
                )
            _check_same_shape(f"{where}.{k}", old[k], new[k])
    elif isinstance(old, str) and not isinstance(new, str):
        raise ConfigError(f"config: {where} must be text, got {new!r}")


@cache
def _load_file(section: str) -> dict[str, Parameter]:
    """One parameter file, parsed once per process (callers must not mutate the values)."""
    text = resources.files("trainkit").joinpath("params", f"{section}.yaml").read_text("utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    raw = yaml.load(text, Loader=loader) or {}
    out = {}
    for name, spec in raw.items():
        key = f"{section}.{name}"
        if not isinstance(spec, dict) or "value" not in spec:
            raise ValueError(f"params/{section}.yaml: {name} needs a 'value'")
        if bool(spec.get("source")) == bool(spec.get("assumption")):
            raise ValueError(
                f"params/{section}.yaml: {name} needs exactly one of 'source' or 'assumption'"
            )
        out[key] = Parameter(
            key,
            spec["value"],
            spec.get("unit", ""),
            spec.get("source"),
            spec.get("assumption"),
            spec.get("derivation"),
        )
    return out


def load_parameters(overrides: Mapping[str, Any] | None = None) -> Parameters:
    """Load every parameter file shipped with trainkit, then apply ``overrides``."""
    entries: dict[str, Parameter] = {}
    for section in PARAM_FILES:
        if resources.files("trainkit").joinpath("params", f"{section}.yaml").is_file():
            entries.update(_load_file(section))
    params = Parameters(entries)
    return params.with_overrides(overrides) if overrides else params
