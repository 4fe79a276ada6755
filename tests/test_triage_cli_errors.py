"""`crownguard triage` and `respond` on input they cannot use: one clear line per problem
naming the file (and the item of a list), exit 2, no traceback, and nothing claimed or
written before the input is known to be good."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.cli import app as cli
from crownguard.engine.errors import FingerprintIndexError
from crownguard.engine.loader import MAX_DEPTH, load_file
from crownguard.engine.triage.detection.fingerprints import FingerprintIndex

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "plugins" / "incydr" / "samples"
USB = SAMPLES / "model-to-removable-media.json"




def usb_event() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(USB.read_text())
    return data


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


# --- nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["deep.json", "deep.yaml"])
def test_deeply_nested_input_is_an_input_error_naming_the_file(
        run_cli: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("[" * 100_000 + "\n")
    code, out, err = run_cli("triage", path)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"{path}{':1' if name.endswith('.yaml') else ''}: lists and objects nest more than "
        f"{MAX_DEPTH} levels deep"]


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    for suffix in (".json", ".yaml"):
        ok = tmp_path / f"ok{suffix}"
        ok.write_text("[" * MAX_DEPTH + "]" * MAX_DEPTH)
        assert load_file(ok).data is not None
        deep = tmp_path / f"deep{suffix}"
        deep.write_text("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
        with pytest.raises(Exception, match="nest more than"):
            load_file(deep)


def test_a_deeply_nested_var_is_taken_as_text() -> None:
    assert cli._parse_var("x=" + "[" * 100_000) == ("x", "[" * 100_000)


# --- files that are not crownguard's SQLite stores ---------------------------------------------


def test_a_fingerprint_index_that_is_not_sqlite_is_named(run_cli: Any, tmp_path: Path) -> None:
    garbage = tmp_path / "fp.txt"
    garbage.write_text("not a database, just text\n" * 10)
    code, out, err = run_cli("triage", USB, "--fingerprints", garbage)
    assert code == 2 and out == ""
    assert err.strip() == (f"crownguard: --fingerprints: {garbage}: is not a crownguard "
                           "fingerprint index (not a SQLite database)")
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrouting: {fingerprints: fp.txt}\n")
    code, _, err = run_cli("triage", USB, "--policy", policy)
    assert code == 2 and err.strip() == (
        f"crownguard: {policy}: routing.fingerprints: {garbage}: is not a crownguard "
        "fingerprint index (not a SQLite database)")


def test_another_sqlite_database_is_not_taken_for_an_index_nor_written(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE runs (id TEXT)")
    with pytest.raises(FingerprintIndexError, match="not a crownguard fingerprint index .*runs"):
        FingerprintIndex(other)
    assert tables(other) == {"runs"}
    with pytest.raises(FingerprintIndexError, match="cannot open"):
        FingerprintIndex(tmp_path / "missing-dir" / "fp.sqlite")


def test_a_dedupe_store_that_is_not_sqlite_stops_respond_before_anything(
        run_cli: Any, tmp_path: Path) -> None:
    garbage = tmp_path / "state.bin"
    garbage.write_bytes(b"\x00garbage" * 64)
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrouting: {dedupe_store: state.bin}\n")
    config = tmp_path / "connections.yaml"
    config.write_text("connections: {}\n")
    journal = tmp_path / "journal" / "journal.sqlite"
    for command in (["respond", "--config", config, "--journal", journal], ["triage"]):
        code, out, err = run_cli(command[0], USB, "--policy", policy, *command[1:])
        assert code == 2 and out == ""
        assert err.strip() == (f"crownguard: {policy}: routing.dedupe_store: {garbage}: is "
                               "not a crownguard dedupe store (not a SQLite database)")
    assert garbage.read_bytes() == b"\x00garbage" * 64 and not journal.parent.exists()


def test_a_dedupe_store_pointing_at_another_database_is_refused(run_cli: Any, tmp_path: Path) -> None:
    index = tmp_path / "fp.sqlite"
    FingerprintIndex(index).close()
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrouting: {dedupe_store: fp.sqlite}\n")
    code, _, err = run_cli("triage", USB, "--policy", policy)
    assert code == 2 and "is not a crownguard dedupe store (a SQLite database holding " \
                         "artifacts, structure_keys, structures, versions)" in err
    assert tables(index) == {"artifacts", "structure_keys", "structures", "versions"}


def test_triage_creates_no_dedupe_store(run_cli: Any, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrouting: {dedupe_store: state/dedupe.sqlite}\n")
    code, _, _ = run_cli("triage", USB, "--policy", policy, "--journal",
                         tmp_path / "j" / "journal.sqlite")
    assert code == 0 and not (tmp_path / "state").exists() and not (tmp_path / "j").exists()


# --- bad events in a file and in a list ----------------------------------------------------------


def test_a_bad_event_names_the_file(run_cli: Any, tmp_path: Path) -> None:
    event = usb_event()
    del event["user"]["email"]
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    code, out, err = run_cli("triage", path)
    assert code == 2 and out == ""
    assert err.strip() == (f"{path}: incydr.file_event: user.email: is required: the event "
                           "names no person")


def test_every_bad_item_of_a_list_is_reported_and_none_is_triaged(run_cli: Any, tmp_path: Path) -> None:
    good = usb_event()
    no_name = usb_event()
    no_name["file"]["name"] = None
    path = tmp_path / "events.json"
    path.write_text(json.dumps([good, good, no_name, {"hello": "world"}, good]))
    code, out, err = run_cli("triage", path)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"{path}: item 3: incydr.file_event: file.name: is required",
        f"{path}: item 4: unrecognised payload: not a crownguard event, an Incydr file event "
        "or alert, and no webhook mapping's `when` matches it",
        f"{path}: 2 of 5 items invalid: nothing was triaged"]


def test_a_bad_file_event_in_a_search_answer_is_named_by_its_index(run_cli: Any, tmp_path: Path) -> None:
    bad = usb_event()
    bad["file"]["sizeInBytes"] = "lots"
    path = tmp_path / "search.json"
    path.write_text(json.dumps({"fileEvents": [usb_event(), bad], "totalCount": 2}))
    code, _, err = run_cli("triage", path)
    assert code == 2 and err.strip().splitlines()[0] == (
        f"{path}: fileEvents item 2: incydr.file_event: file.sizeInBytes: expected a "
        "non-negative integer, got 'lots'")


def test_respond_with_a_bad_item_claims_and_runs_nothing(run_cli: Any, tmp_path: Path) -> None:
    bad = usb_event()
    bad["@timestamp"] = "yesterday"
    path = tmp_path / "events.yaml"
    path.write_text(json.dumps([usb_event(), bad]))
    config = tmp_path / "connections.yaml"
    config.write_text("connections: {}\n")
    journal = tmp_path / "state" / "journal.sqlite"
    code, out, err = run_cli("respond", path, "--config", config, "--journal", journal)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"{path}: item 2: incydr.file_event: @timestamp: not a timestamp: 'yesterday'",
        f"{path}: 1 of 2 items invalid: nothing was triaged or started"]
    assert not journal.parent.exists()


def test_unrecognised_payload_is_said_once(run_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "event.yaml"
    path.write_text("hello: world\n")
    code, _, err = run_cli("triage", path)
    assert code == 2 and err.startswith(f"{path}: unrecognised payload: not a crownguard event")
    assert "(event)" not in err


# --- JSON read as JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ('{"a": 1,\n  "b": }', ":2: invalid JSON: Expecting value (column 8)"),
    ("", ":1: the file is empty"),
    ('[1, 2,]', ":1: invalid JSON: Expecting value (column 7)"),
    ('{"size": NaN}', ": invalid JSON: NaN is not a JSON value"),
    ("a: 1\n", ":1: invalid JSON: Expecting value (column 1)"),
    ('{\t"a": 1, "a": 2}', ": duplicate key 'a'"),  # YAML cannot read it: no line
    ('{\n"a": 1,\n"a": 2}', ":3: duplicate key 'a' (first at line 2)"),
])
def test_a_broken_json_file_is_invalid_json_with_line_and_column(
        run_cli: Any, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "event.json"
    path.write_text(text)
    code, _, err = run_cli("triage", path)
    assert code == 2 and err.strip() == f"{path}{message}"
    yaml_path = tmp_path / "event.yaml"
    yaml_path.write_text("[{\n")
    code, _, err = run_cli("triage", yaml_path)
    assert code == 2 and "invalid YAML" in err


def test_json_is_read_as_json(run_cli: Any, tmp_path: Path) -> None:
    """Tabs, exponents and escaped emoji (surrogate pairs, as json.dumps writes them) mean
    what JSON says."""
    event = usb_event()
    event["file"]["name"] = "weights-\U0001f600.safetensors"
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event, indent="\t"))  # ensure_ascii: "\ud83d\ude00"
    code, out, err = run_cli("triage", path)
    assert code == 0, err
    assert "weights-\U0001f600.safetensors" in out
    assert load_file(path).lines == {}  # YAML cannot read tab indentation: no line numbers
    number = tmp_path / "n.json"
    number.write_text('{\n  "size": 1.5e9\n}')
    doc = load_file(number)
    assert doc.data == {"size": 1.5e9} and doc.lines["/size"] == 2
    assert load_file(number, locate=False).lines == {}  # event files: fast, no line map
    number.write_text('{\n  "size": 1,\n  "size": 2\n}')
    with pytest.raises(Exception, match=":3: duplicate key 'size' \\(first at line 2\\)"):
        load_file(number, locate=False)


# --- respond needs its connections before it claims anything -------------------------------------


def test_respond_without_config_is_a_usage_error_before_anything(run_cli: Any, tmp_path: Path) -> None:
    journal = tmp_path / "state" / "journal.sqlite"
    code, out, err = run_cli("respond", USB, "--journal", journal)
    assert code == 2 and out == ""
    assert err.strip().startswith("crownguard: respond: --config FILE is required")
    assert not journal.parent.exists()


def test_respond_with_a_broken_config_claims_nothing(run_cli: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CG_TEST_UNSET_TOKEN", raising=False)
    config = tmp_path / "connections.yaml"
    config.write_text("connections:\n  okta: {base_url: 'https://x.example', "
                      "token: '${env:CG_TEST_UNSET_TOKEN}'}\n")
    journal = tmp_path / "state" / "journal.sqlite"
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", journal)
    assert code == 2 and out == "" and "CG_TEST_UNSET_TOKEN is not set" in err
    assert not journal.parent.exists()
