"""The step graph of a playbook rendered for people: Mermaid and Graphviz DOT."""

from __future__ import annotations

from ..kinds import When
from ..spec import Playbook


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
        if step.when == When.SUCCESS:
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
        edge = "" if step.when == When.SUCCESS else f' [style=dashed, label="{step.when}"]'
        lines.append(f"    {_dot_quote(need)} -> {_dot_quote(dependant)}{edge};")
    lines.append("}")
    return "\n".join(lines) + "\n"
