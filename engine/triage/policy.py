"""The risk policy file: weights, thresholds and what the organisation knows.

`load_policy(path)` merges a YAML/JSON policy over the shipped defaults
(schemas/policy-default.yaml), validates the result against schemas/policy-v1.json (every
problem at once, with file:line), and returns a Policy with everything precomputed that
scoring needs per event: scoring runs at tens of thousands of events per second, so nothing
is parsed, compiled or looked up by name there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..errors import Problem, SpecError
from ..loader import Document, load_file, parse_text
from ..validation import describe_schema_error, schema_errors
from .events.classify import (
    GENAI_DOMAINS,
    PERSONAL_CLOUD_DOMAINS,
    PERSONAL_EMAIL_DOMAINS,
    NormaliseOptions,
)
from .events.model import zone_named
from .events.webhook import WebhookMapping, mapping_from_dict

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class HighRiskPeriod:
    name: str
    start: date
    end: date
    weight: float


@dataclass(frozen=True)
class Policy:
    """A validated risk policy, ready for scoring."""

    levels: tuple[tuple[float, str], ...]            # (lowest score, level), highest first
    non_model_cap: float
    suspected_model_cap: float
    weights: dict[str, float]
    sensitivity: dict[str, float]
    watchlists: dict[str, float]
    destination_weights: dict[str, float]
    trusted_domains: frozenset[str]
    timezone: ZoneInfo
    work_days: frozenset[int]
    work_start: int                                   # minutes after midnight
    work_end: int
    notice_period_days: int
    periods: tuple[HighRiskPeriod, ...]
    volume_multiplier: float
    volume_min_bytes: int
    volume_no_baseline_bytes: int
    violation_level: str
    mappings: dict[str, WebhookMapping] = field(default_factory=dict)
    options: NormaliseOptions = field(default_factory=NormaliseOptions)
    source: str = "<default policy>"
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    def level_for(self, score: float) -> str:
        for lowest, level in self.levels:
            if score >= lowest:
                return level
        return "info"

    def zone(self, name: str | None) -> ZoneInfo:
        """The person's time zone, or the policy's when it is unknown or invalid."""
        return zone_named(name) or self.timezone if name else self.timezone


@lru_cache(maxsize=1)
def policy_schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("schemas/policy-v1.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=1)
def _default_text() -> str:
    return resources.files(__package__).joinpath("schemas/policy-default.yaml").read_text()


def default_policy_data() -> dict[str, Any]:
    """The shipped defaults as plain data (a fresh copy)."""
    data = parse_text(_default_text(), "policy-default.yaml").data
    plain: dict[str, Any] = _plain(data)
    return plain


def load_policy(path: str | Path | None = None) -> Policy:
    """The shipped defaults, with the policy file at `path` merged over them."""
    if path is None:
        return policy_from_mapping({})
    doc = load_file(path)
    if doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        raise SpecError([Problem(doc.file, 1, "a policy file is a mapping")])
    return policy_from_mapping(doc.data, doc=doc)


def policy_from_mapping(data: dict[str, Any], *, doc: Document | None = None) -> Policy:
    """A Policy from user data merged over the defaults (raises SpecError listing problems)."""
    origin = doc.file if doc else "<policy>"
    merged = _merge(default_policy_data(), _plain(data))
    problems = [problem for error in schema_errors(policy_schema(), merged)
                for problem in _problems(doc, origin, error)]
    # The checks a schema cannot express run as well, wherever their part is well-formed:
    # every problem of a policy file is reported at once.
    mappings: dict[str, WebhookMapping] = {}
    for name, spec in _mapping_items(merged.get("mappings")):
        try:
            mappings[name] = mapping_from_dict(name, spec, origin=origin,
                                               pointer=f"/mappings/{name}")
        except SpecError as exc:
            problems.extend(_located(doc, p) for p in exc.problems)
    hours = merged.get("working_hours")
    hours = hours if isinstance(hours, dict) else {}
    zone = zone_named(hours["timezone"]) if isinstance(hours.get("timezone"), str) else None
    if zone is None and isinstance(hours.get("timezone"), str):
        problems.append(_at(doc, origin, "/working_hours/timezone",
                            f"unknown time zone '{hours['timezone']}'"))
    start_clock, end_clock = _clock(hours.get("start")), _clock(hours.get("end"))
    if start_clock is not None and start_clock == end_clock:
        problems.append(_at(doc, origin, "/working_hours/end",
                            f"working hours start and end at the same time ({hours['end']}): "
                            "every hour would be off hours"))
    periods = []
    for index, period in enumerate(_list(merged.get("high_risk_periods"))):
        try:
            start = date.fromisoformat(period["start"])
            end = date.fromisoformat(period["end"])
            weight = float(period.get("weight", 10))
        except (TypeError, ValueError, KeyError, AttributeError):
            continue  # the schema has said what is wrong with it
        if end < start:
            problems.append(_at(doc, origin, f"/high_risk_periods/{index}/end",
                                f"'{period.get('name')}' ends ({end}) before it starts "
                                f"({start})"))
        periods.append(HighRiskPeriod(str(period.get("name")), start, end, weight))
    levels = merged.get("levels")
    if isinstance(levels, dict) and all(
            isinstance(levels.get(k), int | float) for k in ("low", "medium", "high", "critical")) \
            and not levels["low"] <= levels["medium"] <= levels["high"] <= levels["critical"]:
        problems.append(_at(doc, origin, "/levels", "thresholds must rise: low <= medium <= "
                                                    "high <= critical"))
    problems.extend(_path_problems(doc, origin, merged.get("routing")))
    problems.extend(_access_problems(doc, origin, merged.get("access")))
    if problems:
        raise SpecError(problems)
    levels = merged["levels"]
    destinations = merged["destinations"]
    options = NormaliseOptions(
        registry_domains={k.lower(): v for k, v in (merged.get("registries") or {}).items()},
        corporate_domains=frozenset(d.lower() for d in destinations.get("corporate_domains", ())),
        trusted_domains=frozenset(d.lower() for d in destinations.get("trusted_domains", ())),
        genai_domains=GENAI_DOMAINS | frozenset(d.lower() for d in
                                                destinations.get("genai_domains", ())),
        personal_cloud_domains=PERSONAL_CLOUD_DOMAINS | frozenset(
            d.lower() for d in destinations.get("personal_cloud_domains", ())),
        personal_email_domains=PERSONAL_EMAIL_DOMAINS | frozenset(
            d.lower() for d in destinations.get("personal_email_domains", ())))
    return Policy(
        levels=tuple(sorted(((float(v), k) for k, v in levels.items()), reverse=True)),
        non_model_cap=float(merged["non_model_cap"]),
        suspected_model_cap=float(merged.get("suspected_model_cap", 100)),
        weights={k: float(v) for k, v in merged["weights"].items()},
        sensitivity={k.lower(): float(v) for k, v in merged["sensitivity"].items()},
        watchlists={k: float(v) for k, v in merged["watchlists"].items()},
        destination_weights={k: float(v) for k, v in destinations["weights"].items()},
        trusted_domains=options.trusted_domains,
        timezone=zone or ZoneInfo("UTC"),
        work_days=frozenset(DAYS.index(d) for d in hours["days"]),
        work_start=_minutes(hours["start"]), work_end=_minutes(hours["end"]),
        notice_period_days=int(merged["notice_period_days"]),
        periods=tuple(periods),
        volume_multiplier=float(merged["volume"]["multiplier"]),
        volume_min_bytes=int(merged["volume"]["min_bytes"]),
        volume_no_baseline_bytes=int(merged["volume"]["no_baseline_bytes"]),
        violation_level=str(merged["violation_level"]),
        mappings=mappings, options=options, source=origin, data=merged)


def _path_problems(doc: Document | None, origin: str, routing: Any) -> list[Problem]:
    """Paths of the routing section that no file can have (a NUL, the home of no one), found
    here with their line rather than as an OSError when routing is set up."""
    if not isinstance(routing, dict):
        return []
    paths = [(f"/routing/{key}", routing.get(key)) for key in ("dedupe_store", "fingerprints")]
    playbooks = routing.get("playbooks")
    if isinstance(playbooks, list):
        paths += [(f"/routing/playbooks/{n}", p) for n, p in enumerate(playbooks)]
    problems = []
    for pointer, text in paths:
        if not isinstance(text, str):
            continue
        where = pointer.lstrip("/").replace("/", ".")
        if "\0" in text:
            problems.append(_at(doc, origin, pointer, f"{where}: the path holds a NUL character"))
            continue
        try:
            Path(text).expanduser()
        except RuntimeError:
            problems.append(_at(doc, origin, pointer, f"{where}: {text.split('/')[0]} is no "
                                                      "one's home directory"))
    return problems


def _access_problems(doc: Document | None, origin: str, access: Any) -> list[Problem]:
    """The access section's bounds that must agree with each other."""
    if not isinstance(access, dict):
        return []
    problems = []
    low, two = access.get("auto_grant_below"), access.get("two_approvers_from")
    if isinstance(low, int | float) and isinstance(two, int | float) and two < low:
        problems.append(_at(doc, origin, "/access/two_approvers_from",
                            f"access.two_approvers_from ({two}) is below auto_grant_below "
                            f"({low})"))
    most, usual = access.get("max_duration_hours"), access.get("default_duration_hours")
    if isinstance(most, int | float) and isinstance(usual, int | float) and usual > most:
        problems.append(_at(doc, origin, "/access/default_duration_hours",
                            f"access.default_duration_hours ({usual}) is over "
                            f"max_duration_hours ({most})"))
    return problems


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(value: Any) -> int | None:
    """Minutes of an "HH:MM" clock, or None when it is not one (the schema says so)."""
    try:
        return _minutes(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _list(value: Any) -> list[Any]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _mapping_items(value: Any) -> list[tuple[str, Any]]:
    return list(value.items()) if isinstance(value, dict) else []


def _plain(value: Any) -> Any:
    """YAML's dates as ISO strings; a sexagesimal clock (07:00 read as 420) as "07:00"."""
    if isinstance(value, dict):
        return {str(k): _plain_item(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()[:10]
    return value


def _plain_item(key: str, value: Any) -> Any:
    if key in ("start", "end") and isinstance(value, int) and not isinstance(value, bool) \
            and 0 <= value < 24 * 60:
        return f"{value // 60:02d}:{value % 60:02d}"
    return _plain(value)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _problems(doc: Document | None, origin: str, error: Any) -> list[Problem]:
    pointer = "/" + "/".join(str(p) for p in error.absolute_path)
    pointer = "" if pointer == "/" else pointer
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties") or ())
        extra = sorted(k for k in error.instance if k not in known)
        if extra:  # point at each unknown key, not at its parent
            return [_at(doc, origin, f"{pointer}/{key}", f"'{key}' is not a policy setting "
                        f"here (known: {', '.join(sorted(known))})") for key in extra]
    return [_at(doc, origin, pointer, describe_schema_error(error))]


def _at(doc: Document | None, origin: str, pointer: str, message: str) -> Problem:
    line = doc.line_of(pointer) if doc else None
    return Problem(origin, line, message, pointer, "policy")


def _located(doc: Document | None, problem: Problem) -> Problem:
    if doc is None or problem.line is not None:
        return problem
    return Problem(problem.file, doc.line_of(problem.pointer), problem.message, problem.pointer,
                   "policy")
