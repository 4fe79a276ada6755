"""The step graph: a networkx DiGraph (edge need -> step), its static checks and renderings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:
    from .spec import Playbook, Step


def build_graph(steps: tuple[Step, ...] | list[Step]) -> nx.DiGraph:
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


def _label(step: Step) -> str:
    return f"{step.id}\\n{step.action}"


def to_mermaid(playbook: Playbook) -> str:
    lines = ["flowchart TD"]
    for step in playbook.steps:
        text = f"{step.id}<br/><small>{step.action}</small>"
        if step.for_each is not None:
            text += "<br/><small>for each</small>"
        shape = f'{{{{"{text}"}}}}' if step.if_ else f'["{text}"]'
        lines.append(f"    {step.id}{shape}")
    for need, dependant in playbook.graph.edges:
        step = playbook.graph.nodes[dependant]["step"]
        if step.when == "success":
            lines.append(f"    {need} --> {dependant}")
        else:
            lines.append(f"    {need} -. {step.when} .-> {dependant}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(playbook: Playbook) -> str:
    lines = [f"digraph {_dot_quote(playbook.name)} {{", "    rankdir=TB;",
             "    node [shape=box, style=rounded];"]
    for step in playbook.steps:
        label = f"{step.id}\n{step.action}" + ("\nfor each" if step.for_each is not None else "")
        attrs = [f"label={_dot_quote(label)}"]
        if step.if_:
            attrs.append("shape=diamond")
        lines.append(f"    {_dot_quote(step.id)} [{', '.join(attrs)}];")
    for need, dependant in playbook.graph.edges:
        step = playbook.graph.nodes[dependant]["step"]
        edge = "" if step.when == "success" else f' [style=dashed, label="{step.when}"]'
        lines.append(f"    {_dot_quote(need)} -> {_dot_quote(dependant)}{edge};")
    lines.append("}")
    return "\n".join(lines) + "\n"
