"""State of the Defender mock: machines, file profiles, machine actions, Entra errors."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from werkzeug import Response

ISOLATION = ("Isolate", "Unisolate")
EPOCH = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)


def timestamp(tick: int) -> str:
    """A deterministic, strictly increasing UTC time for the mock's tick counter."""
    return (EPOCH + timedelta(seconds=tick)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def entra_error(status: int, error: str, code: int, description: str) -> Response:
    """An Entra ID (AADSTS) token-endpoint error."""
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} "
                                 f"Correlation ID: {correlation} Timestamp: 2026-11-28 "
                                 "09:00:00Z",
            "error_codes": [code], "timestamp": "2026-11-28 09:00:00Z", "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}"}
    return Response(json.dumps(body), status=status, content_type="application/json")


@dataclass
class ModelFile:
    sha1: str
    sha256: str
    md5: str
    size: int
    name: str

    @classmethod
    def of(cls, content: bytes, name: str) -> ModelFile:
        return cls(hashlib.sha1(content).hexdigest(),  # noqa: S324 - Defender's key
                   hashlib.sha256(content).hexdigest(), hashlib.md5(content).hexdigest(),  # noqa: S324
                   len(content), name)

    def entity(self) -> dict[str, Any]:
        return {"sha1": self.sha1, "sha256": self.sha256, "md5": self.md5,
                "globalPrevalence": 1, "globalFirstObserved": "2026-11-20T10:00:00Z",
                "globalLastObserved": "2026-11-27T16:00:00Z", "size": self.size,
                "fileType": None, "isPeFile": False, "filePublisher": None,
                "fileProductName": None, "signer": None, "issuer": None,
                "signerHash": None, "isValidCertificate": None,
                "determinationType": "Unknown", "determinationValue": ""}


@dataclass
class MockMachine:
    """One device; camelCase fields are Defender's own names (settable through add_machine)."""

    id: str
    dns_name: str
    osPlatform: str = "Windows11"
    healthStatus: str = "Active"
    lastSeen: str = "2026-11-28T08:40:00.000000Z"
    firstSeen: str = "2025-01-06T08:00:00.000000Z"
    lastIpAddress: str = "10.0.0.10"
    lastExternalIpAddress: str = "203.0.113.10"
    riskScore: str = "Medium"
    exposureLevel: str = "Medium"
    aadDeviceId: str | None = None
    machineTags: list[str] = field(default_factory=list)
    isolated: bool = False
    isolation_type: str | None = None
    files: set[str] = field(default_factory=set)  # SHA-1s present on the device
    quarantined: set[str] = field(default_factory=set)

    def entity(self) -> dict[str, Any]:
        return {"id": self.id, "computerDnsName": self.dns_name,
                "firstSeen": self.firstSeen, "lastSeen": self.lastSeen,
                "osPlatform": self.osPlatform, "version": "24H2", "osProcessor": "x64",
                "lastIpAddress": self.lastIpAddress,
                "lastExternalIpAddress": self.lastExternalIpAddress,
                "healthStatus": self.healthStatus, "onboardingStatus": "Onboarded",
                "rbacGroupId": 0, "rbacGroupName": None, "riskScore": self.riskScore,
                "exposureLevel": self.exposureLevel, "isAadJoined": True,
                "aadDeviceId": self.aadDeviceId, "machineTags": list(self.machineTags),
                "deviceValue": "Normal"}


@dataclass
class MachineAction:
    """A machine action; it runs for `polls_left` polls of its own URL, then ends with
    `outcome` and (on success) changes the machine."""

    id: str
    type: str
    machine_id: str
    dns_name: str
    comment: str
    created: int
    scope: str | None = None
    sha1: str | None = None
    polls_left: int = 2
    outcome: str = "Succeeded"
    status: str = "Pending"
    updated: int = 0

    @property
    def running(self) -> bool:
        return self.status in ("Pending", "InProgress")

    def poll(self, machine: MockMachine, tick: int) -> None:
        if not self.running:
            return
        self.polls_left -= 1
        if self.polls_left > 0:
            self.status, self.updated = "InProgress", tick
        else:
            self.finish(self.outcome, machine, tick)

    def finish(self, status: str, machine: MockMachine, tick: int) -> None:
        self.status, self.updated = status, tick
        if status != "Succeeded":
            return
        if self.type == "Isolate":
            machine.isolated, machine.isolation_type = True, self.scope
        elif self.type == "Unisolate":
            machine.isolated, machine.isolation_type = False, None
        elif self.type == "StopAndQuarantineFile" and self.sha1 in machine.files:
            machine.files.discard(self.sha1)
            machine.quarantined.add(self.sha1)

    def entity(self, base_url: str, with_context: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "type": self.type, "title": None, "requestor": "crownguard-app",
            "requestorComment": self.comment, "status": self.status,
            "machineId": self.machine_id, "computerDnsName": self.dns_name,
            "creationDateTimeUtc": timestamp(self.created),
            "lastUpdateDateTimeUtc": timestamp(self.updated or self.created),
            "cancellationRequestor": None, "cancellationComment": None,
            "cancellationDateTimeUtc": None, "errorHResult": 0, "scope": self.scope,
            "externalId": None, "requestSource": "PublicApi",
            "relatedFileInfo": ({"fileIdentifier": self.sha1, "fileIdentifierType": "Sha1"}
                                if self.sha1 else None),
            "commands": [], "troubleshootInfo": None,
        }
        if with_context:
            body = {"@odata.context": f"{base_url}/api/$metadata#MachineActions/$entity",
                    **body}
        return body
