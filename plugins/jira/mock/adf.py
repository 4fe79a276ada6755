"""The mock's check of Atlassian Document Format bodies, as Jira validates them on write.

A subset of the ADF JSON schema (developer.atlassian.com, "Atlassian Document Format"): the
nodes and marks crownguard's converter produces, with the rules Jira enforces for them (doc
version 1, non-empty text nodes, `code` combinable only with `link`, what each block may hold).
"""

from __future__ import annotations

from typing import Any

INLINE = frozenset({"text", "hardBreak"})
LIST_CHILDREN = frozenset({"paragraph", "bulletList", "orderedList", "codeBlock"})
QUOTE_CHILDREN = frozenset({"paragraph", "bulletList", "orderedList", "codeBlock"})
TOP_LEVEL = frozenset({"paragraph", "heading", "bulletList", "orderedList", "codeBlock",
                       "blockquote", "rule"})
MARKS = frozenset({"strong", "em", "code", "link", "strike", "underline"})


def adf_problems(doc: Any) -> list[str]:
    """Every reason `doc` is not a valid ADF document (empty when it is)."""
    problems: list[str] = []
    if not isinstance(doc, dict) or doc.get("type") != "doc" or doc.get("version") != 1:
        return ["the value is not an ADF document (type doc, version 1)"]
    _children(doc, TOP_LEVEL, "doc", problems, required=False)
    return problems


def _children(node: dict[str, Any], allowed: frozenset[str], where: str,
              problems: list[str], required: bool = True) -> None:
    content = node.get("content")
    if content is None and not required:
        return
    if not isinstance(content, list) or (required and not content):
        problems.append(f"{where}: content must be a non-empty list")
        return
    for index, child in enumerate(content):
        path = f"{where}/{index}"
        if not isinstance(child, dict) or child.get("type") not in allowed:
            kind = child.get("type") if isinstance(child, dict) else type(child).__name__
            problems.append(f"{path}: {kind} is not allowed in {node.get('type')}")
            continue
        _node(child, path, problems)


def _node(node: dict[str, Any], path: str, problems: list[str]) -> None:
    kind = node["type"]
    if kind in ("paragraph", "heading"):
        if kind == "heading" and node.get("attrs", {}).get("level") not in range(1, 7):
            problems.append(f"{path}: heading level must be 1..6")
        _children(node, INLINE, path, problems, required=False)
    elif kind in ("bulletList", "orderedList"):
        order = node.get("attrs", {}).get("order", 1) if kind == "orderedList" else 1
        if not isinstance(order, int) or order < 0:
            problems.append(f"{path}: order must be a non-negative integer")
        _children(node, frozenset({"listItem"}), path, problems)
    elif kind == "listItem":
        _children(node, LIST_CHILDREN, path, problems)
    elif kind == "blockquote":
        _children(node, QUOTE_CHILDREN, path, problems)
    elif kind == "codeBlock":
        language = node.get("attrs", {}).get("language")
        if language is not None and not isinstance(language, str):
            problems.append(f"{path}: language must be a string")
        for index, child in enumerate(node.get("content") or []):
            if not isinstance(child, dict) or child.get("type") != "text" or child.get("marks"):
                problems.append(f"{path}/{index}: a code block holds unmarked text only")
            else:
                _text(child, f"{path}/{index}", problems)
    elif kind == "rule":
        if node.get("content"):
            problems.append(f"{path}: a rule has no content")
    elif kind == "text":
        _text(node, path, problems)


def _text(node: dict[str, Any], path: str, problems: list[str]) -> None:
    if not isinstance(node.get("text"), str) or not node["text"]:
        problems.append(f"{path}: text must be a non-empty string")
    marks = node.get("marks", [])
    if not isinstance(marks, list):
        problems.append(f"{path}: marks must be a list")
        return
    kinds = [m.get("type") if isinstance(m, dict) else None for m in marks]
    for mark, kind in zip(marks, kinds, strict=True):
        if kind not in MARKS:
            problems.append(f"{path}: unknown mark {kind!r}")
        elif kind == "link" and not isinstance((mark.get("attrs") or {}).get("href"), str):
            problems.append(f"{path}: a link mark needs attrs.href")
    if len(set(kinds)) != len(kinds):
        problems.append(f"{path}: a mark is applied twice")
    if "code" in kinds and set(kinds) - {"code", "link"}:
        problems.append(f"{path}: code can only be combined with link")
