"""The step graph: a networkx DiGraph (edge need -> step) and its static checks.

It knows steps only as `Node`s (an id and its needs), so it does not import the playbook
objects that use it; rendering the graph is the CLI's (engine/cli/render.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import networkx as nx


class Node(Protocol):
    """What the graph needs of a step."""

    @property
    def id(self) -> str: ...

    @property
    def needs(self) -> Sequence[str]: ...


def build_graph(steps: Sequence[Node]) -> nx.DiGraph:
    """Nodes are step ids (with the Step as `step`); an edge runs from a need to its dependant.
    Needs naming unknown steps are left out (validation reports them)."""
    graph: nx.DiGraph = nx.DiGraph()
    ids = {s.id for s in steps}
    for step in steps:
        graph.add_node(step.id, step=step)
    for step in steps:
        for need in step.needs:
            if need in ids:
                graph.add_edge(need, step.id)
    return graph


def find_cycles(graph: nx.DiGraph, limit: int = 5) -> list[list[str]]:
    """Up to `limit` elementary cycles, each as the list of its step ids in order."""
    cycles: list[list[str]] = []
    for cycle in nx.simple_cycles(graph):
        if len(cycle) == 1:
            continue  # a step needing itself is reported as such
        # Start each cycle at its smallest id so the message is stable.
        i = cycle.index(min(cycle))
        cycles.append(cycle[i:] + cycle[:i])
        if len(cycles) >= limit:
            break
    return sorted(cycles)
