from __future__ import annotations

import pytest

from crownguard.engine.errors import ExpressionError
from crownguard.engine.expressions import (
    compile_template,
    referenced_roots,
    render,
    truthy,
)

CTX = {
    "event": {"actor": {"email": "dana@example.com", "tags": ["a", "b"]}, "size": 7, "n": None},
    "steps": {"find": {"output": {"device_id": "d-1", "hosts": [{"id": 1}, {"id": 2}]},
                       "status": "succeeded"}},
    "vars": {"base": "https://x.example"},
}


def test_whole_expression_keeps_its_type() -> None:
    assert render("${{ event.actor.tags }}", CTX) == ["a", "b"]
    assert render("${{ event.size }}", CTX) == 7
    assert render("  ${{ steps.find.output }}  ".strip(), CTX)["device_id"] == "d-1"
    assert render("${{ event.missing }}", CTX) is None


def test_interpolation_is_text() -> None:
    assert render("user ${{ event.actor.email }} moved ${{ event.size }} files", CTX) == \
        "user dana@example.com moved 7 files"
    assert render("tags=${{ event.actor.tags }} none=${{ event.n }}", CTX) == \
        'tags=["a","b"] none='


def test_nested_values_render_and_other_types_pass_through() -> None:
    value = {"a": ["${{ steps.find.output.device_id }}", 3, True], "b": {"c": None}}
    assert render(value, CTX) == {"a": ["d-1", 3, True], "b": {"c": None}}


def test_braces_inside_expression() -> None:
    assert render("${{ {id: steps.find.output.device_id, n: {m: event.size}} }}", CTX) == \
        {"id": "d-1", "n": {"m": 7}}


def test_added_functions() -> None:
    assert render("${{ lower('ABC') }}-${{ upper('x') }}-${{ trim('  y ') }}", CTX) == "abc-X-y"
    assert render("${{ split('a,b', ',') }}", CTX) == ["a", "b"]
    assert render("${{ replace('a-b', '-', '_') }}", CTX) == "a_b"
    assert render("${{ coalesce(event.n, event.missing, 'z') }}", CTX) == "z"
    assert render("${{ default(event.n, `5`) }}", CTX) == 5
    assert render("${{ from_json('{\"k\": 1}').k }}", CTX) == 1
    assert render("${{ format('{0} on {1}', [event.actor.email, 'h1']) }}", CTX) == \
        "dana@example.com on h1"
    assert render("${{ format('{who}', {who: 'me'}) }}", CTX) == "me"
    assert render("${{ now() }}", CTX).endswith("Z")


def test_syntax_errors_name_the_expression() -> None:
    with pytest.raises(ExpressionError, match=r"a\["):
        compile_template("${{ a[ }}")
    with pytest.raises(ExpressionError, match="without a closing"):
        compile_template("x ${{ a ")
    with pytest.raises(ExpressionError, match="empty"):
        compile_template("${{ }}")


def test_runtime_errors_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="from_json"):
        render("${{ from_json('nope') }}", CTX)
    with pytest.raises(ExpressionError):
        render("${{ lower(event.size) }}", CTX)


def test_no_code_execution() -> None:
    # JMESPath has no way to reach Python objects; these are just missing fields.
    assert render("${{ __class__ }}", CTX) is None
    assert render("${{ event.__init__ }}", CTX) is None


def test_truthiness() -> None:
    assert not any(truthy(v) for v in (None, False, "", [], {}))
    assert all(truthy(v) for v in (0, "0", [0], {"a": 1}, True))


def test_referenced_roots_and_steps() -> None:
    roots, steps = referenced_roots("length(steps.a.output[?x == `1`]) > `0` || !event.y")
    assert roots == {"steps", "event"} and steps == {"a"}
    roots, _ = referenced_roots("items[?status == 'x'].id")
    assert roots == {"items"}
    roots, steps = referenced_roots("{a: item.x, b: steps.q.output}")
    assert roots == {"item", "steps"} and steps == {"q"}


def test_sha256_gives_a_stable_key_from_any_id() -> None:
    key = render("${{ sha256(event.id) }}", {"event": {"id": "0_a b/c"}})
    assert key == "7c809e64d4be7ce25c426c2461dabcf006691f6c0e50c5daad1f638476d8622c"
