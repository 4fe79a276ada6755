"""The shared nudge templates (crownguard.plugins._nudge) used by the Slack and e-mail nudges:
the tiny template language, escaping, languages, and playbook authors' overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crownguard.engine import InputError
from crownguard.plugins._nudge import (
    TEMPLATE_FILES,
    Template,
    TemplateError,
    TemplateSource,
    escape_html,
    escape_mrkdwn,
    render_nudge,
)
from crownguard.plugins._nudge.templates import SHIPPED

REQUIRED = {"file_name": "llama-ft-q4.safetensors", "policy": "AI model handling policy"}
VALUES = {"name": "Ada", "file": "m.bin", "empty": "", "policy": "P"}


# --- the template language -----------------------------------------------------------------------


def test_values_sections_and_inverted_sections() -> None:
    template = Template("Hi {{ name }}{{#file}}, about {{file}}{{/file}}"
                        "{{^empty}} (nothing else){{/empty}}{{#empty}}never{{/empty}}.")
    assert template.render(VALUES) == "Hi Ada, about m.bin (nothing else)."
    assert template.names == {"name", "file", "empty"}


def test_section_tags_alone_on_a_line_leave_no_blank_line() -> None:
    template = Template("a\n{{#empty}}\nhidden\n{{/empty}}\nb\n  {{#name}}\nshown\n{{/name}}\nc\n")
    assert template.render(VALUES) == "a\nb\nshown\nc\n"


def test_values_are_escaped_but_template_text_is_not() -> None:
    template = Template('<a href="{{ file }}">{{ name }}</a>')
    values = {"file": 'x" onclick="evil()', "name": "<b>Ada & co</b>"}
    assert template.render(values, escape_html) == (
        '<a href="x&quot; onclick=&quot;evil()">&lt;b&gt;Ada &amp; co&lt;/b&gt;</a>')
    assert escape_mrkdwn("<!channel> & <http://x|y>") == "&lt;!channel&gt; &amp; &lt;http://x|y&gt;"


def test_values_are_never_expanded_again() -> None:
    assert Template("{{ name }}").render({"name": "{{ policy }}"}) == "{{ policy }}"


@pytest.mark.parametrize("source", [
    "{{ user.name }}",                 # attribute access
    "{{ name.__class__ }}",
    "{{ name | upper }}",              # filters
    "{{ __import__('os').system('x') }}",
    "{{ names[0] }}",                  # indexing
    "{% if name %}x{% endif %}{{ }}",  # another template language
])
def test_nothing_but_names_is_accepted(source: str) -> None:
    with pytest.raises(TemplateError, match="is not a placeholder"):
        Template(source, name="evil.txt")


@pytest.mark.parametrize(("source", "message"), [
    ("{{#name}}open", "never closed"),
    ("{{#name}}x{{/file}}", "closes nothing open here"),
    ("text {{ name", "never closed"),
    ("line\n{{/name}}", "line 2"),
])
def test_malformed_sections_are_reported_with_a_line(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        Template(source, name="t.txt")


def test_an_unknown_value_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(TemplateError) as caught:
        Template("{{ nmae }}", name="body.txt").render(VALUES)
    assert "body.txt" in str(caught.value) and "nmae" in str(caught.value)
    assert isinstance(caught.value, InputError)


# --- the shipped templates -----------------------------------------------------------------------


@pytest.mark.parametrize("language", sorted(p.name for p in SHIPPED.iterdir()))
def test_every_shipped_language_is_complete_and_respectful(language: str) -> None:
    assert {p.name for p in (SHIPPED / language).iterdir()} == set(TEMPLATE_FILES.values())
    content = render_nudge({**REQUIRED, "language": language})
    assert content.language == language
    for part in (content.text, content.html, content.mrkdwn):
        assert "llama-ft-q4.safetensors" in part and "AI model handling policy" in part
    lowered = " ".join([content.subject, content.text]).lower()
    for word in ("theft", "steal", "stole", "violat", "illegal", "diebstahl", "vol ", "voler",
                 "verstoß", "crime", "disciplin"):
        assert word not in lowered


def test_all_optional_values_render_in_every_language() -> None:
    values = {**REQUIRED, "employee_name": "Ada", "file_path": "/home/ada/m.bin",
              "destination": "a personal Google Drive", "policy_url": "https://intranet/p",
              "seen_at": "2026-11-28 09:14 UTC", "contact": "security@acme.example",
              "respond_url": "https://forms.acme.example/answer?case=7", "case_id": "IR-7",
              "organisation": "Acme"}
    for language in ("en", "de", "fr"):
        content = render_nudge({**values, "language": language})
        assert "IR-7" in content.text and "https://forms.acme.example/answer?case=7" in content.html
        assert '<a href="https://intranet/p">' in content.html
        assert "<https://intranet/p|AI model handling policy>" in content.mrkdwn


@pytest.mark.parametrize(("requested", "used"), [
    ("de", "de"), ("de-CH", "de"), ("fr_FR", "fr"), ("FR", "fr"), ("es", "en"), (None, "en"),
    ("", "en"), ("German", "en"), ("x", "en")])
def test_language_selection_falls_back_to_english(requested: Any, used: str) -> None:
    assert render_nudge({**REQUIRED, "language": requested}).language == used


def test_headers_and_labels_are_one_line() -> None:
    content = render_nudge({**REQUIRED, "file_name": "a\r\nBcc: victim@example.com"})
    assert "\n" not in content.subject and "\r" not in content.subject


def test_required_values() -> None:
    with pytest.raises(InputError, match="'policy' is required"):
        render_nudge({"file_name": "m.bin", "policy": " "})


# --- authors' overrides --------------------------------------------------------------------------


@pytest.fixture
def override(tmp_path: Path) -> Path:
    folder = tmp_path / "nudges"
    (folder / "de").mkdir(parents=True)
    (folder / "subject.txt").write_text("[{{ organisation }}] About {{ file_name }}\n")
    (folder / "de" / "subject.txt").write_text("[{{ organisation }}] Zu {{ file_name }}\n")
    (folder / "body.txt").write_text("Team {{ team }}: {{ file_name }} / {{ policy }}\n")
    return folder


def test_override_file_by_file_and_language_by_language(override: Path) -> None:
    inputs = {**REQUIRED, "templates": str(override), "organisation": "Acme",
              "values": {"team": "Red"}}
    english = render_nudge(inputs)
    german = render_nudge({**inputs, "language": "de"})
    french = render_nudge({**inputs, "language": "fr"})

    assert english.subject == "[Acme] About llama-ft-q4.safetensors"
    assert german.subject == "[Acme] Zu llama-ft-q4.safetensors"
    assert french.subject == english.subject  # the author's root file is for every language
    assert english.text == "Team Red: llama-ft-q4.safetensors / AI model handling policy\n"
    # Parts the author did not write stay the shipped ones, in the employee's language.
    assert german.button_mistake == "Versehen, ich habe sie gelöscht"
    assert "Falls es ein Versehen war" in german.html


def test_an_override_language_the_shipped_set_lacks(override: Path) -> None:
    (override / "es").mkdir()
    (override / "es" / "subject.txt").write_text("Sobre {{ file_name }}\n")
    content = render_nudge({**REQUIRED, "templates": str(override), "language": "es-MX",
                            "values": {"team": "Red"}})
    assert content.language == "es" and content.subject == "Sobre llama-ft-q4.safetensors"
    assert content.button_reason == "I have a business reason"  # English for the rest


def test_relative_override_is_taken_from_the_playbook_folder(override: Path) -> None:
    run_context = {"run": {"playbook_dir": str(override.parent)}}
    content = render_nudge({**REQUIRED, "templates": "nudges", "values": {"team": "Red"}},
                           run_context)
    assert content.subject.startswith("[]")


def test_relative_override_without_a_playbook_folder_uses_the_working_directory(
        override: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(override.parent)
    content = render_nudge({**REQUIRED, "templates": "nudges", "values": {"team": "Red"}}, {})
    assert content.subject.startswith("[]")


def test_a_broken_override_names_the_file_not_the_full_path(override: Path) -> None:
    (override / "body.html").write_text("<p>{{ file_name.upper() }}</p>")
    with pytest.raises(TemplateError) as caught:
        render_nudge({**REQUIRED, "templates": str(override), "values": {"team": "x"}})
    assert "body.html" in str(caught.value) and str(override) not in str(caught.value)


def test_missing_override_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not a folder"):
        render_nudge({**REQUIRED, "templates": str(tmp_path / "nope")})


def test_extra_values_cannot_shadow_nudge_inputs() -> None:
    with pytest.raises(InputError, match="set it directly"):
        render_nudge({**REQUIRED, "values": {"policy": "other"}})


def test_template_source_lists_languages(override: Path) -> None:
    assert TemplateSource().languages() == {"en", "de", "fr"}
    assert TemplateSource(override).languages() == {"en", "de", "fr"}
