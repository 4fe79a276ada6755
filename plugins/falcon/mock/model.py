"""State of the Falcon mock: hosts with their containment and files, Real Time Response
sessions and commands, and a subset of FQL."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CID = "6f0f2a1e4b2c4e0c9b8f7a6d5c4b3a21"


@dataclass
class MockFile:
    sha256: str
    md5: str
    size: int

    @classmethod
    def of(cls, content: bytes) -> MockFile:
        return cls(hashlib.sha256(content).hexdigest(), hashlib.md5(content).hexdigest(),  # noqa: S324
                   len(content))


@dataclass
class MockHost:
    """One sensor. `pending_reads` counts the host-record reads left before a pending
    containment transition lands, so tests and the demo see `containment_pending` first."""

    device_id: str
    hostname: str
    platform_name: str = "Windows"
    os_version: str = "Windows 11"
    local_ip: str = "10.0.0.10"
    external_ip: str = "203.0.113.10"
    mac_address: str = "00-15-5d-00-00-10"
    last_seen: str = "2026-11-27T09:00:00Z"
    first_seen: str = "2025-01-06T08:00:00Z"
    agent_version: str = "7.18.18605.0"
    status: str = "normal"
    pending_reads: int = 0
    files: dict[str, tuple[str, MockFile]] = field(default_factory=dict)
    folders: set[str] = field(default_factory=set)

    @property
    def windows(self) -> bool:
        return self.platform_name == "Windows"

    def key(self, path: str) -> str:
        """Paths compare case-insensitively with either slash on Windows, exactly elsewhere."""
        return path.replace("/", "\\").rstrip("\\").lower() if self.windows else path.rstrip("/")

    def parent(self, path: str) -> str:
        key = self.key(path)
        sep = "\\" if self.windows else "/"
        return key.rsplit(sep, 1)[0] if sep in key else ""

    def add_file(self, path: str, file: MockFile) -> None:
        self.files[self.key(path)] = (path, file)
        self.folders.add(self.parent(path))

    def file(self, path: str) -> MockFile | None:
        entry = self.files.get(self.key(path))
        return entry[1] if entry else None

    def record(self) -> dict[str, Any]:
        """The host as GET /devices/entities/devices/v2 returns it (main fields)."""
        return {
            "device_id": self.device_id, "cid": CID, "hostname": self.hostname,
            "platform_name": self.platform_name, "os_version": self.os_version,
            "agent_version": self.agent_version, "local_ip": self.local_ip,
            "external_ip": self.external_ip, "mac_address": self.mac_address,
            "first_seen": self.first_seen, "last_seen": self.last_seen, "status": self.status,
            "product_type_desc": "Workstation", "provision_status": "Provisioned",
            "reduced_functionality_mode": "no", "tags": [],
            "device_policies": {"prevention": {"policy_type": "prevention", "applied": True}},
        }


# --- FQL (the subset the mock understands) -----------------------------------------------------

@dataclass
class Session:
    session_id: str
    device_id: str
    files: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False


@dataclass
class Command:
    cloud_request_id: str
    session_id: str
    base_command: str
    stdout: str
    stderr: str
    polls_left: int


FILTERABLE = {"device_id", "hostname", "status", "platform_name", "local_ip", "external_ip",
              "mac_address", "os_version", "agent_version", "last_seen", "first_seen"}
TERM = re.compile(r"^(?P<field>[a-z_.]+):(?P<neg>!)?(?P<wild>\*)?(?P<value>.+)$", re.DOTALL)


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside quotes and brackets."""
    parts, depth, quote, current = [], 0, "", []
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\" and i + 1 < len(text):
                current.append(text[i:i + 2])
                i += 2
                continue
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append("".join(current))
            current = []
            i += 1
            continue
        current.append(char)
        i += 1
    if quote or depth:
        raise ValueError("unbalanced quote or bracket")
    parts.append("".join(current))
    return [p.strip() for p in parts]


def _literal(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if not text or any(c in text for c in "'\"[]"):
        raise ValueError(f"bad value {text!r}")
    return text


def _term(text: str) -> Callable[[dict[str, Any]], bool]:
    match = TERM.match(text)
    if not match or match["field"] not in FILTERABLE:
        raise ValueError(f"invalid filter term {text!r}")
    name, raw = match["field"], match["value"].strip()
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise ValueError("unbalanced bracket")
        values = [_literal(v).lower() for v in _split(raw[1:-1], ",")]
    else:
        values = [_literal(raw).lower()]
    if match["wild"]:
        patterns = [re.compile("^" + ".*".join(map(re.escape, v.split("*"))) + "$")
                    for v in values]

        def test(record: dict[str, Any]) -> bool:
            return any(p.match(str(record.get(name, "")).lower()) for p in patterns)
    else:
        def test(record: dict[str, Any]) -> bool:
            return str(record.get(name, "")).lower() in values
    negate = bool(match["neg"])
    return (lambda record: not test(record)) if negate else test


def compile_fql(text: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate over host records; `+` is AND, `,` is OR. ValueError if not understood."""
    alternatives = [[_term(t) for t in _split(alt, "+")] for alt in _split(text, ",")]
    return lambda record: any(all(t(record) for t in terms) for terms in alternatives)
