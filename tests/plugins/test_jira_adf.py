"""The Markdown/plain text to Atlassian Document Format converter, checked node by node and
against the mock's ADF rules for any input (hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crownguard.engine.markup import unquote
from crownguard.plugins.jira.adf import to_adf
from crownguard.plugins.jira.mock.adf import adf_problems


def text(value: str, *marks: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    if marks:
        node["marks"] = list(marks)
    return node


def para(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(content)}


STRONG, EM, CODE = {"type": "strong"}, {"type": "em"}, {"type": "code"}


def link(href: str) -> dict[str, Any]:
    return {"type": "link", "attrs": {"href": href}}


def blocks(markdown: str, fmt: str = "markdown") -> list[dict[str, Any]]:
    doc = to_adf(markdown, fmt)
    assert doc["type"] == "doc" and doc["version"] == 1
    assert adf_problems(doc) == []
    content: list[dict[str, Any]] = doc["content"]
    return content


def test_paragraphs_and_hard_breaks() -> None:
    assert blocks("one\ntwo\n\nthree") == [
        para(text("one"), {"type": "hardBreak"}, text("two")), para(text("three"))]


def test_headings() -> None:
    assert blocks("# Title\n### Sub ###\n#nospace") == [
        {"type": "heading", "attrs": {"level": 1}, "content": [text("Title")]},
        {"type": "heading", "attrs": {"level": 3}, "content": [text("Sub")]},
        para(text("#nospace"))]


def test_inline_marks() -> None:
    assert blocks("a **b** *c* __d__ _e_ `f` ***g***") == [para(
        text("a "), text("b", STRONG), text(" "), text("c", EM), text(" "), text("d", STRONG),
        text(" "), text("e", EM), text(" "), text("f", CODE), text(" "),
        text("g", STRONG, EM))]


def test_underscores_inside_words_stay_text() -> None:
    assert blocks("copy of model_v2_final.safetensors, 2 * 3 * 4") == [
        para(text("copy of model_v2_final.safetensors, 2 * 3 * 4"))]


def test_code_keeps_its_content_literal_and_drops_other_marks() -> None:
    assert blocks("**`x*y*`**") == [para(text("x*y*", CODE))]


def test_links_and_bare_urls() -> None:
    assert blocks("see [the alert](https://soc.example.com/a?b=1) or https://x.example/p.") == [
        para(text("see "), text("the alert", link("https://soc.example.com/a?b=1")),
             text(" or "), text("https://x.example/p", link("https://x.example/p")), text("."))]


def test_bold_link_label() -> None:
    assert blocks("[**x**](mailto:soc@example.com)") == [
        para(text("x", link("mailto:soc@example.com"), STRONG))]


@pytest.mark.parametrize("unsafe", ["javascript:alert(1)", "data:text/html,x", "file:///etc/x",
                                    "vbscript:x", "//evil.example"])
def test_unsafe_links_lose_their_target(unsafe: str) -> None:
    doc = to_adf(f"[click]({unsafe})")
    assert adf_problems(doc) == []
    assert "link" not in str(doc) and "click" in str(doc)


def test_escapes() -> None:
    assert blocks(r"\*not italic\* \# \[x\](y)") == [para(text("*not italic* # [x](y)"))]


def test_bullet_and_numbered_lists_nest() -> None:
    def item(label: str, *children: dict[str, Any]) -> dict[str, Any]:
        return {"type": "listItem", "content": [para(text(label)), *children]}

    assert blocks("- a\n  - b\n  - c\n- d\n\n3. x\n4) y") == [
        {"type": "bulletList", "content": [
            item("a", {"type": "bulletList", "content": [item("b"), item("c")]}), item("d")]},
        {"type": "orderedList", "attrs": {"order": 3}, "content": [item("x"), item("y")]}]


def test_list_item_continuation_lines() -> None:
    assert blocks("- first line\n  second line\n- next")[0]["content"][0]["content"] == [
        para(text("first line"), {"type": "hardBreak"}, text("second line"))]


def test_fenced_code_blocks() -> None:
    assert blocks("```python\nprint('**x**')\n\n```\n~~~\nraw\n~~~\n```") == [
        {"type": "codeBlock", "attrs": {"language": "python"},
         "content": [text("print('**x**')\n")]},
        {"type": "codeBlock", "attrs": {}, "content": [text("raw")]},
        {"type": "codeBlock", "attrs": {}}]


def test_quotes_rules_and_what_quotes_may_hold() -> None:
    assert blocks("> # h\n> > nested\n> ---\n\n---") == [
        {"type": "blockquote", "content": [para(text("h")), para(text("nested"))]},
        {"type": "rule"}]


def test_plain_text_is_not_interpreted() -> None:
    assert blocks("# not a heading\n**x** [y](https://z)\n\n- not a list", "plain") == [
        para(text("# not a heading"), {"type": "hardBreak"}, text("**x** [y](https://z)")),
        para(text("- not a list"))]


def test_control_characters_and_empty_input() -> None:
    assert blocks("a\x00b\x1b[31mc\r\nd") == [para(text("ab[31mc"), {"type": "hardBreak"},
                                                  text("d"))]
    assert blocks("") == [] and blocks("\n \n", "plain") == []


@pytest.mark.parametrize("hostile", [
    "*a " * 10000, "[" * 30000, "a` `" * 7000, "_" * 30000, "**a " * 7000, "[a](" * 7000,
    "> " * 15000, "\n".join("  " * n + "- x" for n in range(2000)), "`" * 30000,
    "- a" + "\n" * 30000 + "b", "- a\n\n" * 8000, "x" + "*" * 30000, "a_" * 15000,
    "```" + "a" * 30000 + "`", "# " + " #" * 15000 + "x"])
def test_hostile_input_gives_a_valid_document(hostile: str) -> None:
    # These inputs also guard the linear scan: a quadratic one takes minutes on them.
    assert adf_problems(to_adf(hostile)) == []


MARKDOWNISH = st.lists(st.sampled_from([*"ab *_`[]()#->\n\\h:/.1~", "https://", "```", "  ",
                                         "1. ", "- ", "> "]), max_size=60).map("".join)


@settings(max_examples=300, deadline=None, database=None)
@given(MARKDOWNISH, st.sampled_from(["markdown", "plain"]))
def test_any_input_gives_a_valid_document(source: str, fmt: str) -> None:
    assert adf_problems(to_adf(source, fmt)) == []


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=200))
def test_plain_text_keeps_every_visible_character(source: str) -> None:
    doc = to_adf(source, "plain")

    def texts(node: dict[str, Any]) -> str:
        return node.get("text", "") + "".join(texts(c) for c in node.get("content", []))

    # A stand-in typed into the text (U+E03A) shows as the character it stands for
    # (engine/markup.py: unquoting only ever makes text literal).
    visible = [c for c in unquote(source) if not c.isspace() and c.isprintable()]
    assert [c for c in texts(doc) if not c.isspace() and c.isprintable()] == visible


def test_nested_same_emphasis_is_one_mark() -> None:
    from crownguard.plugins.jira.adf import parse_inline

    nodes = parse_inline("*_a_*")
    assert nodes == [{"type": "text", "text": "a", "marks": [{"type": "em"}]}]
