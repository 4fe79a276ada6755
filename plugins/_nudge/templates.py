"""Where nudge templates come from: the shipped languages and a playbook author's folder.

An author's folder overrides file by file. For an employee whose language is L, each template
file is looked up in this order, and the first found wins:

    <author folder>/L/<file>     the author's text in the employee's language
    <author folder>/<file>       the author's text for every language
    <shipped>/L/<file>           the shipped text in the employee's language
    <shipped>/en/<file>          the shipped English text

So an author can replace one sentence set for everybody, or translate, without copying the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crownguard.engine import InputError
from crownguard.plugins._nudge.templating import Template

SHIPPED = Path(__file__).parent / "templates"
DEFAULT_LANGUAGE = "en"
MAX_TEMPLATE_BYTES = 64 * 1024

# The parts of a nudge and the file each one is read from.
TEMPLATE_FILES: dict[str, str] = {
    "subject": "subject.txt",
    "text": "body.txt",
    "html": "body.html",
    "mrkdwn": "body.mrkdwn",
    "button_mistake": "button_mistake.txt",
    "button_reason": "button_reason.txt",
    "justification_label": "justification_label.txt",
}

_LANGUAGE = re.compile(r"\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*\s*")
_RUN_DIR_KEYS = ("playbook_dir",)
_RUN_FILE_KEYS = ("playbook_path", "playbook_file", "source")


def primary_language(value: str | None) -> str | None:
    """The primary subtag of a language tag ("de-CH", "fr_FR" -> "de", "fr"), or None."""
    if not value:
        return None
    match = _LANGUAGE.fullmatch(value)
    return match.group(1).lower() if match else None


def resolve_template_dir(value: str, run_context: Mapping[str, Any] | None = None) -> Path:
    """The author's template folder. A relative path is taken from the playbook's folder when
    the run context says where the playbook is, and from the working directory otherwise."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        base = playbook_dir(run_context or {})
        path = (base or Path.cwd()) / path
    if not path.is_dir():
        raise InputError(f"templates: '{value}' is not a folder (resolved to {path})")
    return path


def playbook_dir(run_context: Mapping[str, Any]) -> Path | None:
    """The playbook's folder, if the engine put it in the run context (see docs: not yet)."""
    run = run_context.get("run")
    if not isinstance(run, Mapping):
        return None
    for key in _RUN_DIR_KEYS:
        if isinstance(run.get(key), str) and run[key]:
            return Path(run[key])
    for key in _RUN_FILE_KEYS:
        value = run.get(key)
        if isinstance(value, str) and value and not value.startswith("<"):
            return Path(value).parent
    return None


class TemplateSource:
    """Loads the template files of one language, with an optional author folder on top."""

    def __init__(self, override: Path | None = None, shipped: Path = SHIPPED):
        self.override = override
        self.shipped = shipped

    def languages(self) -> set[str]:
        """Every language some folder has templates for."""
        found = {p.name for p in self.shipped.iterdir() if p.is_dir()}
        if self.override is not None:
            found |= {p.name for p in self.override.iterdir()
                      if p.is_dir() and primary_language(p.name) == p.name}
        return found

    def choose(self, requested: str | None) -> str:
        """The language to use for `requested`, falling back to English."""
        language = primary_language(requested)
        return language if language in self.languages() else DEFAULT_LANGUAGE

    def load(self, part: str, language: str) -> Template:
        file_name = TEMPLATE_FILES[part]
        for folder in self._folders(language):
            path = folder / file_name
            if path.is_file():
                return Template(_read(path), name=self._label(path))
        raise InputError(f"no template {file_name} for language '{language}'")

    def _folders(self, language: str) -> list[Path]:
        folders: list[Path] = []
        if self.override is not None:
            folders += [self.override / language, self.override]
        folders += [self.shipped / language, self.shipped / DEFAULT_LANGUAGE]
        return folders

    def _label(self, path: Path) -> str:
        """A name for messages: relative to the folder it came from, no absolute paths."""
        for root in (self.override, self.shipped):
            if root is not None and path.is_relative_to(root):
                prefix = "" if root == self.override else "shipped/"
                return prefix + str(path.relative_to(root))
        return path.name


def _read(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_TEMPLATE_BYTES:
        raise InputError(f"template {path.name} is {size} bytes; the limit is "
                         f"{MAX_TEMPLATE_BYTES}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"template {path.name} is not UTF-8 text") from None
