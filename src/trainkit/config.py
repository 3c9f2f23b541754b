"""The run configuration: size, seed, cohorts, LAs, parameter overrides; validated up front."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

DEFAULT_BIRTH_START = dt.date(1998, 4, 1)
DEFAULT_CENSUS_DATE = dt.date(2024, 3, 31)


@dataclass(frozen=True)
class Config:
    """What to generate. Same config and seed give byte-identical output.

    Attributes:
        children: people simulated (children born in the cohorts plus later arrivals).
        seed: seed of every random draw.
        birth_start: first date of birth in the covered cohorts.
        birth_end: last date of birth (defaults to the census date).
        census_date: the 31 March that ends follow-up.
        local_authorities: DfE LA numbers to place children in (default: all 153).
        shard_size: people per shard; part of the config because it shapes the random streams.
        messiness: how many recording errors the agencies' files carry: clean, realistic, heavy.
        collection_years: how many collection years of returns to write, ending with the year
            that ends on the census date.
        parameters: overrides of model parameters, by ``section.name`` key.
    """

    children: int = 10_000
    seed: int = 0
    birth_start: dt.date = DEFAULT_BIRTH_START
    birth_end: dt.date | None = None
    census_date: dt.date = DEFAULT_CENSUS_DATE
    local_authorities: tuple[int, ...] | None = None
    shard_size: int = 20_000
    messiness: str = "realistic"
    collection_years: int = 5
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def last_birth(self) -> dt.date:
        return self.birth_end or self.census_date

    @property
    def years(self) -> tuple[int, ...]:
        """Collection years written (each ends on 31 March of that year), oldest first."""
        last = self.census_date.year
        first = max(last - self.collection_years + 1, self.birth_start.year + 1)
        return tuple(range(first, last + 1))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("birth_start", "birth_end", "census_date"):
            d[k] = d[k].isoformat() if d[k] else None
        d["birth_end"] = self.last_birth.isoformat()
        d["local_authorities"] = list(self.local_authorities) if self.local_authorities else None
        return d


FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _as_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"config: {name} must be a whole number, got {value!r}")
    if value < minimum:
        what = "positive" if minimum == 1 else f"at least {minimum}"
        raise ConfigError(f"config: {name} must be {what}, got {value}")
    return value


def _as_date(name: str, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"config: {name} must be a date written YYYY-MM-DD, got {value!r}")


def make_config(values: dict[str, Any]) -> Config:
    """Validate raw values (from a YAML file and/or the command line) into a :class:`Config`.

    Raises:
        ConfigError: one line naming the field and the fix.
    """
    unknown = [k for k in values if k not in FIELDS]
    if unknown:
        import difflib

        near = difflib.get_close_matches(unknown[0], list(FIELDS), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f"; known keys: {', '.join(FIELDS)}"
        raise ConfigError(f"config: unknown key {unknown[0]!r}{hint}")
    v = dict(values)
    out: dict[str, Any] = {}
    if "children" in v:
        out["children"] = _as_int("children", v["children"], 1)
    if "seed" in v:
        out["seed"] = _as_int("seed", v["seed"], 0)
    if "shard_size" in v:
        out["shard_size"] = _as_int("shard_size", v["shard_size"], 100)
    if "messiness" in v:
        from .datasets.record import MESSINESS_LEVELS

        if v["messiness"] not in MESSINESS_LEVELS:
            raise ConfigError(
                f"config: messiness must be one of {', '.join(MESSINESS_LEVELS)}, "
                f"got {v['messiness']!r}"
            )
        out["messiness"] = v["messiness"]
    if "collection_years" in v:
        out["collection_years"] = _as_int("collection_years", v["collection_years"], 1)
    for k in ("birth_start", "birth_end", "census_date"):
        if v.get(k) is not None:
            out[k] = _as_date(k, v[k])
    if v.get("local_authorities") is not None:
        las = v["local_authorities"]
        if not isinstance(las, list | tuple) or not las:
            raise ConfigError(
                "config: local_authorities must be a non-empty list of DfE LA numbers, "
                f"e.g. [202, 886], got {las!r}"
            )
        from .reference import local_authorities

        known = set(local_authorities()["dfe_la_code"].astype(int))
        for code in las:
            if isinstance(code, bool) or not isinstance(code, int) or code not in known:
                raise ConfigError(
                    f"config: local_authorities: {code!r} is not a DfE LA number of a "
                    "children's services authority (e.g. 202 Camden, 886 Kent); the list is in "
                    "trainkit/data/local_authorities.csv"
                )
        out["local_authorities"] = tuple(sorted(set(las)))
    if v.get("parameters") is not None:
        if not isinstance(v["parameters"], dict):
            raise ConfigError("config: parameters must be a mapping of parameter name to value")
        out["parameters"] = dict(v["parameters"])
    cfg = Config(**out)
    from .datasets.identifiers import MAX_PEOPLE, NHS_TEST_CAPACITY

    if cfg.children > MAX_PEOPLE:
        raise ConfigError(
            f"config: children must be at most {MAX_PEOPLE:,}, got {cfg.children:,}: every "
            "child gets an NHS number from the range reserved for testing (999 000 0000 - "
            f"999 999 9999), which holds only {NHS_TEST_CAPACITY:,} valid numbers, and some "
            "are kept for the new NHS numbers issued to adopted children"
        )
    if cfg.census_date.month != 3 or cfg.census_date.day != 31:
        raise ConfigError(
            f"config: census_date must be a 31 March (collection years end then), got "
            f"{cfg.census_date.isoformat()}"
        )
    if cfg.last_birth < cfg.birth_start:
        raise ConfigError(
            f"config: birth_end ({cfg.last_birth}) is before birth_start ({cfg.birth_start}); "
            "the cohorts must end after they start"
        )
    if cfg.last_birth > cfg.census_date:
        raise ConfigError(
            f"config: birth_end ({cfg.last_birth}) is after census_date ({cfg.census_date}); "
            "children cannot be born after follow-up ends"
        )
    if cfg.birth_start < dt.date(1990, 4, 1):
        raise ConfigError(
            f"config: birth_start ({cfg.birth_start}) is before 1990-04-01; the model's rates "
            "start in the 2000s, so use a later date"
        )
    if cfg.parameters:
        from .parameters import load_parameters

        load_parameters(cfg.parameters)  # raises ConfigError on an unknown or mistyped override
    return cfg


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into raw values (validated by :func:`make_config`)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config: file {str(p)!r} not found; check the path given to --config")
    try:
        raw = yaml.safe_load(p.read_text("utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config: {p} is not valid YAML{where}; fix the syntax") from None
    except ValueError as e:  # e.g. a date such as 2024-13-01
        raise ConfigError(
            f"config: {p} holds an invalid value ({e}); write dates as YYYY-MM-DD"
        ) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config: {p} must hold a mapping of keys (children, seed, ...)")
    return raw
