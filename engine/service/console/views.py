"""What the console's pages show, worked out from runs and playbooks: the step graph laid out
for SVG, a wait's time left, the timeline's rows. Plain functions of plain data; the
templates only place it (and escape it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import networkx as nx

from ...errors import UndoError
from ...kinds import EventType
from ...plugins import PluginHost
from ...spec import Playbook
from ...undo import plan_undo

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 168, 44, 56, 18, 8


@dataclass(frozen=True)
class Node:
    id: str
    action: str
    status: str
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    path: str  # an SVG path from the need's right side to the dependant's left


@dataclass(frozen=True)
class GraphView:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def layers(graph: nx.DiGraph) -> list[list[str]]:
    """Steps in columns: each step one column right of its last need (one column for a graph
    that is not a DAG, which validation refuses anyway)."""
    try:
        return [list(g) for g in nx.topological_generations(graph)]
    except nx.NetworkXUnfeasible:
        return [list(graph.nodes)]


def graph_view(playbook: Playbook, statuses: dict[str, str] | None = None) -> GraphView:
    """The playbook's step graph (Playbook.graph) placed for an SVG, each node with its status
    (`pending` for a step the run has not reached, `""` for a playbook shown without a run)."""
    graph = playbook.graph
    order = {s.id: i for i, s in enumerate(playbook.steps)}
    spots: dict[str, tuple[int, int]] = {}
    columns = layers(graph)
    for col, ids in enumerate(columns):
        for row, step_id in enumerate(sorted(ids, key=order.__getitem__)):
            spots[step_id] = (PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    nodes = [Node(s.id, s.action, (statuses or {}).get(s.id, "pending" if statuses else ""),
                  *spots[s.id]) for s in playbook.steps if s.id in spots]
    edges = []
    for need, step_id in graph.edges:
        (x1, y1), (x2, y2) = spots[need], spots[step_id]
        sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
        mid = (sx + ex) // 2
        edges.append(Edge(f"M{sx},{sy} C{mid},{sy} {mid},{ey} {ex - 6},{ey}"))
    rows = max((len(ids) for ids in columns), default=1)
    width = PAD * 2 + len(columns) * NODE_W + (len(columns) - 1) * GAP_X
    height = PAD * 2 + rows * NODE_H + (rows - 1) * GAP_Y
    return GraphView(nodes, edges, max(width, NODE_W), max(height, NODE_H))


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(text: str | None) -> str:
    """A journal time as a person reads it: '2026-12-02 05:58:09 UTC' (the page keeps the
    exact one in the <time> element's datetime)."""
    moment = parse_time(text)
    if moment is None:
        return text or ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def time_left(expires_at: str | None, now: datetime | None = None) -> str:
    """'4 min 12 s left', 'expired', or '' when there is no deadline."""
    moment = parse_time(expires_at)
    if moment is None:
        return ""
    seconds = int((moment - (now or datetime.now(UTC))).total_seconds())
    if seconds <= 0:
        return "expired"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "",
             f"{minutes} min" if minutes and not days else "",
             f"{secs} s" if not days and not hours else ""]
    return " ".join(p for p in parts if p) + " left"


_SKIP = {"type", "at", "step", "attempt", "inputs", "output", "playbook", "run_id", "seq"}


def timeline_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row an event: when, what, which step and attempt, its error, and the rest briefly."""
    rows = []
    for event in events:
        rest = {k: v for k, v in event.items() if k not in _SKIP and k != "error"
                and v not in (None, "", [], {})}
        rows.append({"at": event.get("at", ""), "type": event.get("type", ""),
                     "step": event.get("step", ""), "attempt": event.get("attempt", ""),
                     "error": event.get("error") or "",
                     "detail": ", ".join(f"{k}: {_brief(v)}" for k, v in rest.items())})
    return rows


def _brief(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def changes_made(playbook: Playbook, events: list[dict[str, Any]], host: PluginHost
                 ) -> list[dict[str, Any]]:
    """The vendor changes a run's steps made, oldest first: each side-effecting step (or
    for_each item) that succeeded, whether it changed anything, and its undo action with the
    inputs the undo would send (undo.plan_undo's), or why there is none."""
    planned = {(c.step, c.item): c for c in _plan(playbook, events, host)}
    rows = []
    for event in events:
        kind = event.get("type")
        if kind not in (EventType.STEP_SUCCEEDED, EventType.ITEM_SUCCEEDED):
            continue
        step = playbook.by_id.get(event.get("step", ""))
        if step is None or (kind == EventType.STEP_SUCCEEDED and step.for_each is not None):
            continue
        action = host.actions.get(step.action)
        if action is None or not action.side_effect:
            continue
        output = event.get("output")
        changed = not isinstance(output, dict) or output.get("changed", True) is not False
        call = planned.get((step.id, event.get("item")))
        why = ("" if call else "changed nothing" if not changed
               else "no undo action" if not action.undo else "dry run")
        rows.append({"step": step.id, "item": event.get("item"), "action": step.action,
                     "at": event.get("at", ""), "changed": changed,
                     "undo": call.action if call else action.undo or "",
                     "undo_inputs": call.inputs if call else {}, "no_undo": why})
    return rows


def _plan(playbook: Playbook, events: list[dict[str, Any]], host: PluginHost) -> list[Any]:
    try:
        return plan_undo(playbook, events, host)
    except UndoError:  # an undo action not installed: the rows say "no undo" then
        return []


def who_acted(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """runs.operator_actions with the reason given (a cancel's): who started or cancelled."""
    kinds = {EventType.RUN_STARTED: "started", EventType.RUN_CANCELLED: "cancelled"}
    return [{"action": kinds[event["type"]], "by": event["by"], "via": event.get("via"),
             "at": event.get("at"), "reason": event.get("reason") if event["type"] ==
             EventType.RUN_CANCELLED else None}
            for event in events if event.get("type") in kinds and event.get("by")]
