"""Comparing a scenario's runs and vendor calls with its `expect`: every mismatch as a
sentence that says what was expected and what happened instead. (What triage made of the
event, `expect.detection`, `risk` and `playbooks`, is checked by the triage wing.)"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..kinds import StepStatus
from ..mocks import RecordedCall
from .format import Scenario, ScenarioResult

RUN_KEYS = ("status", "steps", "outputs", "errors")


def check(scenario: Scenario, result: ScenarioResult,
          redact: Callable[[str], str] = str) -> list[str]:
    """Every way the runs and the calls differ from `expect`. Request bodies quoted in
    messages go through `redact` before they are shortened."""
    expect = scenario.data["expect"]
    problems: list[str] = []
    runs = dict(expect.get("runs") or {})
    if any(k in expect for k in RUN_KEYS):
        if len(result.runs) != 1:
            problems.append(f"expected one run, there were {len(result.runs)}: use expect.runs")
        else:
            runs[result.runs[0]["playbook"]] = {k: expect[k] for k in RUN_KEYS if k in expect}
    records = {r["playbook"]: r for r in result.runs}
    for name, wanted in runs.items():
        if name not in records:
            problems.append(f"run of {name}: expected, but it did not run")
            continue
        problems += _check_run(name, wanted, records[name])
    for call in expect.get("calls") or ():
        problems += _check_call(call, result.calls, redact)
    for call in expect.get("no_calls") or ():
        made = _matching(call, result.calls)
        if made:
            problems.append(f"call {_describe(call)}: expected none, got {len(made)}")
    return problems


def _check_run(name: str, wanted: dict[str, Any], record: dict[str, Any]) -> list[str]:
    found = []
    steps = record["steps"]
    refused = record.get("refused_answers") or {}
    for step, status in (wanted.get("steps") or {}).items():
        got = steps.get(step)
        if got is None:
            found.append(f"{name}: no step '{step}'")
        elif got["status"] != status:
            error = f" (error: {got['error']})" if got.get("error") else ""
            why = f" (its answer was refused: {refused[step]})" if step in refused else ""
            found.append(f"{name}: step {step} expected {status}, got {got['status']}{error}"
                         f"{why}")
    for step, output in (wanted.get("outputs") or {}).items():
        got = (steps.get(step) or {}).get("output")
        found += [f"{name}: step {step} output {m}" for m in differences(output, got, "")]
    for step, text in (wanted.get("errors") or {}).items():
        error = (steps.get(step) or {}).get("error") or ""
        if text not in error:
            found.append(f"{name}: step {step} error expected to contain {text!r}, got "
                         f"{error!r:.300}")
    if "status" in wanted and record["status"] != wanted["status"]:
        failed = [f"{s}: {v['error']}" for s, v in steps.items()
                  if v["status"] == StepStatus.FAILED]
        answers = [f"{s}: {reason}" for s, reason in refused.items()]
        found.append(f"{name}: run expected {wanted['status']}, got {record['status']}"
                     + (f" (failed: {'; '.join(failed)})" if failed else "")
                     + (f" (answers refused: {'; '.join(answers)})" if answers else ""))
    return found


def _check_call(call: dict[str, Any], calls: list[tuple[str, RecordedCall]],
                redact: Callable[[str], str]) -> list[str]:
    made = _matching(call, calls)
    if "count" in call and len(made) != call["count"]:
        return [f"call {_describe(call)}: expected {call['count']}, got {len(made)}"
                + _near(call, calls, redact)]
    if len(made) < call.get("at_least", 1 if "count" not in call else 0):
        return [f"call {_describe(call)}: not made" + _near(call, calls, redact)]
    return []


def _near(call: dict[str, Any], calls: list[tuple[str, RecordedCall]],
          redact: Callable[[str], str]) -> str:
    """What the mock did receive on that path, or at all: the likeliest explanation."""
    same = [c for name, c in calls if name == call["mock"]]
    on_path = [c for c in same if _path_matches(call.get("path"), c.path)]
    shown = on_path or same
    if not shown:
        return f" ({call['mock']} received no call)"
    listed = ", ".join(f"{c.method} {c.path} {_body_text(c, redact)}" for c in shown[:3])
    return f" ({call['mock']} received: {listed}{', ...' if len(shown) > 3 else ''})"


def _body_text(call: RecordedCall, redact: Callable[[str], str]) -> str:
    body = _body(call)
    text = redact(str(body)) if body else ""
    return text if len(text) <= 120 else text[:119] + "…"


def _describe(call: dict[str, Any]) -> str:
    parts = [call["mock"], call.get("method", "*"), call.get("path", "*")]
    for key in ("query", "body"):
        if key in call:
            parts.append(f"{key} {call[key]}")
    return " ".join(str(p) for p in parts)


def _path_matches(template: str | None, path: str) -> bool:
    if template is None:
        return True
    if "{" not in template:
        return template == path
    regex = re.sub(r"\\\{[A-Za-z_][A-Za-z0-9_]*\\\}", "[^/]+", re.escape(template))
    return re.fullmatch(regex, path) is not None


def _body(call: RecordedCall) -> Any:
    parsed = call.json
    if parsed is not None:
        return parsed
    return call.form if call.body else None


def _matching(call: dict[str, Any], calls: list[tuple[str, RecordedCall]]) -> list[RecordedCall]:
    found = []
    for name, made in calls:
        if name != call["mock"] or ("method" in call and made.method != call["method"].upper()):
            continue
        if not _path_matches(call.get("path"), made.path):
            continue
        query = {k: v[0] if len(v) == 1 else v for k, v in made.query.items()}
        if "query" in call and differences(call["query"], query, ""):
            continue
        if "body" in call and differences(call["body"], _body(made), ""):
            continue
        found.append(made)
    return found


def differences(expected: Any, actual: Any, where: str = "") -> list[str]:
    """How `actual` fails to contain `expected`: objects by key, lists item by item (order
    free), `{$contains: text}` and `{$regex: pattern}` for strings, anything else equal."""
    at = where or "(top)"
    if isinstance(expected, dict) and set(expected) == {"$contains"}:
        ok = isinstance(actual, str) and str(expected["$contains"]) in actual
        return [] if ok else [f"{at}: expected text containing {expected['$contains']!r}, got "
                              f"{actual!r:.200}"]
    if isinstance(expected, dict) and set(expected) == {"$regex"}:
        ok = isinstance(actual, str) and re.search(str(expected["$regex"]), actual) is not None
        return [] if ok else [f"{at}: expected text matching {expected['$regex']!r}, got "
                              f"{actual!r:.200}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{at}: expected an object, got {actual!r:.200}"]
        found = []
        for key, value in expected.items():
            if key not in actual:
                found.append(f"{where}.{key}: missing" if where else f"{key}: missing")
            else:
                found += differences(value, actual[key], f"{where}.{key}" if where else str(key))
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{at}: expected a list, got {actual!r:.200}"]
        missing = [item for item in expected
                   if not any(not differences(item, candidate, "") for candidate in actual)]
        return [f"{at}: no item like {item!r:.200} in {actual!r:.200}" for item in missing]
    if expected != actual and not (isinstance(expected, int | float)
                                   and isinstance(actual, str) and str(expected) == actual):
        return [f"{at}: expected {expected!r}, got {actual!r:.200}"]
    return []
