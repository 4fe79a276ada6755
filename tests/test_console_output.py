"""A terminal never breaks a run: encodings that cannot take the timeline's symbols, colour
only on a TTY without NO_COLOR, aligned step columns, the terminal's width, and event text
that cannot drive the terminal."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.cli.console import ASCII_SYMBOLS, printable, symbols_for, use_color
from crownguard.engine.cli.timeline import Timeline, summary_table

PLAYBOOK = """name: encodings
steps:
  - {id: first, action: core.noop, with: {note: "café ✓ →"}}
  - {id: a_rather_long_step_identifier_here, action: core.noop, needs: [first]}
  - {id: skipped_one, action: core.noop, needs: [first], if: "'✓' == 'x'"}
"""
CLI = [sys.executable, "-m", "crownguard.engine.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "PYTHONIOENCODING", "COLUMNS", "CROWNGUARD_DEBUG")}
    return {**env, **extra}


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_run_under_a_narrow_encoding_exits_0_with_ascii_symbols(tmp_path: Path,
                                                                encoding: str) -> None:
    (tmp_path / "pb.yaml").write_text(PLAYBOOK, encoding="utf-8")
    (tmp_path / "e.json").write_text("{}")
    done = subprocess.run([*CLI, "run", "pb.yaml", "--event", "e.json", "--no-journal"],
                          cwd=tmp_path, capture_output=True, timeout=120,
                          env=_env(PYTHONIOENCODING=encoding))
    out, err = done.stdout.decode(encoding), done.stderr.decode(encoding)
    assert done.returncode == 0, out + err
    assert "internal error" not in err and "UnicodeEncodeError" not in out + err
    assert done.stdout.isascii() and "\x1b[" not in out  # not a TTY: no colour either
    assert f"  {ASCII_SYMBOLS['started']} first " in out
    assert f"  {ASCII_SYMBOLS['succeeded']} first " in out
    assert f"  {ASCII_SYMBOLS['skipped']} skipped_one " in out
    assert "run finished: succeeded" in out
    # What the encoding cannot hold of event text is written as an escape, not fatal.
    assert "skipped (if: '\\u2713' == 'x' is false)" in out


def test_demo_under_ascii_exits_0(tmp_path: Path) -> None:
    done = subprocess.run([*CLI, "demo"], cwd=tmp_path, capture_output=True, timeout=300,
                          env=_env(PYTHONIOENCODING="ascii"))
    out, err = done.stdout.decode("ascii"), done.stderr.decode("ascii")
    assert done.returncode == 0, out[-2000:] + err
    assert "internal error" not in err and "\x1b[" not in out
    assert f"{ASCII_SYMBOLS['succeeded']} soc_ticket" in out
    assert "\nsummary" in out


def test_a_display_that_fails_never_fails_the_run(run_playbook: Any,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from crownguard.engine.plugins import PluginHost
    from crownguard.engine.runner import Runner
    from crownguard.engine.spec import parse_playbook

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("the terminal went away")

    host = PluginHost.from_entry_points()
    record = Runner(host, on_event=Timeline(Broken())).run(
        parse_playbook(PLAYBOOK, host.actions), {})
    assert record["status"] == "succeeded"
    warnings = [r for r in caplog.records if "timeline cannot show" in r.getMessage()]
    assert len(warnings) == 1  # once, not once per event


class _Terminal(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


EVENTS = [
    {"type": "step_started", "step": "first", "at": "2026-12-02T10:00:00.000000Z"},
    {"type": "step_succeeded", "step": "first", "output": {"ok": True},
     "at": "2026-12-02T10:00:01.000000Z"},
    {"type": "step_failed", "step": "second", "error": "boom",
     "at": "2026-12-02T10:00:02.000000Z"},
]


def _show(out: Any, events: list[dict[str, Any]] = EVENTS, **options: Any) -> str:
    timeline = Timeline(out, **options)
    for event in events:
        timeline(event)
    return str(out.getvalue())


def test_colour_on_a_tty_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    coloured = _show(_Terminal())
    assert "\x1b[32m✔\x1b[0m first" in coloured and "\x1b[31m✘\x1b[0m second" in coloured
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b" not in _show(_Terminal())
    monkeypatch.delenv("NO_COLOR")
    assert "\x1b" not in _show(io.StringIO())  # not a TTY
    monkeypatch.setenv("TERM", "dumb")
    assert not use_color(_Terminal())


def _columns(text: str, word: str) -> set[int]:
    return {line.index(word) for line in text.splitlines() if word in line}


def test_long_step_ids_keep_the_columns_aligned() -> None:
    steps = ["a", "a_rather_long_step_identifier_here"]
    events = [{"type": "step_started", "step": s, "at": "2026-12-02T10:00:00.000000Z"}
              for s in steps]
    events += [{"type": "step_succeeded", "step": s, "output": {},
                "at": "2026-12-02T10:00:01.000000Z"} for s in steps]
    text = _show(io.StringIO(), events, steps=steps)
    assert len(_columns(text, " started")) == 1 and len(_columns(text, " succeeded")) == 1
    assert "a_rather_long_step_identifier_here started" in text  # widened, not cut
    # Without the playbook's ids, or past the widest column, an id is cut, consistently.
    huge = "s" * 80
    events = [{"type": t, "step": s, "output": {}, "at": "2026-12-02T10:00:00.000000Z"}
              for s in ("a", huge) for t in ("step_started", "step_succeeded")]
    for options in ({}, {"steps": ["a", huge]}):
        text = _show(io.StringIO(), events, **options)
        assert len(_columns(text, " started")) == 1 and len(_columns(text, " succeeded")) == 1
        assert huge not in text and "sss…" in text


def test_output_summaries_follow_the_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    event = {"type": "step_succeeded", "step": "s", "output": {"text": "x" * 500},
             "at": "2026-12-02T10:00:01.000000Z"}
    monkeypatch.setenv("COLUMNS", "70")
    narrow = _show(io.StringIO(), [event])
    monkeypatch.setenv("COLUMNS", "200")
    wide = _show(io.StringIO(), [event])
    assert len(narrow.rstrip("\n")) <= 70 < len(wide.rstrip("\n")) <= 200


HOSTILE = "evil\x1b[2J\x1b]0;pwned\x07\u202egnp.exe\x9b31m.safetensors"


def test_printable_escapes_controls_and_bidi() -> None:
    shown = printable(HOSTILE)
    assert shown == "evil\\x1b[2J\\x1b]0;pwned\\x07\\u202egnp.exe\\x9b31m.safetensors"
    assert printable(shown) == shown and printable("café ✔") == "café ✔"
    assert printable("one\ntwo", newlines=True) == "one\ntwo"
    assert printable("one\ntwo") == "one\\x0atwo"


def test_timeline_and_summary_escape_event_text() -> None:
    failed = {"type": "step_failed", "step": "s", "error": f"cannot read {HOSTILE}",
              "at": "2026-12-02T10:00:01.000000Z"}
    text = _show(io.StringIO(), [failed])
    table = summary_table({"steps": {"s": {"status": "failed", "attempts": 1,
                                           "error": f"cannot read {HOSTILE}"}}})
    for shown in (text, table):
        assert "\x1b" not in shown and "\u202e" not in shown and "\x9b" not in shown
        assert "evil\\x1b[2J" in shown


def test_triage_prints_a_hostile_file_name_escaped(run_cli: Any, tmp_path: Path) -> None:
    event = {"id": "n-1", "time": "2026-11-24T10:15:00Z",
             "actor": {"email": "bob@example.com"},
             "file": {"name": HOSTILE},
             "destination": {"kind": "removable_media", "trusted": False}}
    (tmp_path / "e.json").write_text(json.dumps(event))
    code, out, _ = run_cli("triage", tmp_path / "e.json")
    assert code == 0
    assert "\x1b" not in out and "\u202e" not in out and "\x9b" not in out and "\x07" not in out
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\u202egnp.exe" in out


def test_symbols_fall_back_only_when_the_stream_cannot_encode_them() -> None:
    ascii_stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    assert symbols_for(ascii_stream) == ASCII_SYMBOLS
    assert symbols_for(io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))["succeeded"] == "✔"
