"""Real Time Response: one session on one host, commands run to completion and checked."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from crownguard.engine import ActionContext, ConflictError, InputError, VendorError

from .client import FalconClient

log = logging.getLogger("crownguard.plugins.falcon")

# RTR reads the command string itself; a quote or line break in a path would let the path
# become a second argument or a second command.
UNSAFE_IN_PATH = re.compile(r'["\r\n\x00]')
SHA256 = re.compile(r"\b[0-9a-fA-F]{64}\b")
# What the sensor prints when a path is not there (Windows, macOS and Linux wordings).
MISSING = re.compile(r"not found|cannot find|no such file|does not exist|path not found",
                     re.IGNORECASE)


def quote_path(path: str) -> str:
    if UNSAFE_IN_PATH.search(path):
        raise InputError(f"falcon: path {path!r} contains a quote or line break, which RTR "
                         "cannot pass safely")
    return f'"{path}"'


@dataclass(frozen=True)
class CommandResult:
    """The finished command as the sensor reported it."""

    base_command: str
    command_string: str
    cloud_request_id: str
    stdout: str
    stderr: str

    def check(self, operation: str) -> CommandResult:
        """Fail loudly when the sensor reported an error for the command."""
        if self.stderr.strip():
            raise ConflictError(f"`{self.command_string}` failed on the host: "
                                f"{self.stderr.strip()[:500]}", vendor="falcon",
                                operation=operation)
        return self


class RtrSession:
    """An RTR session on one host; closed on exit even when a command failed."""

    def __init__(self, ctx: ActionContext, client: FalconClient, device_id: str):
        self.ctx = ctx
        self.client = client
        self.device_id = device_id
        self.session_id = ""

    def __enter__(self) -> RtrSession:
        self.session_id = self.client.start_session(self.device_id)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            self.client.close_session(self.session_id)
        except VendorError as exc:  # sessions expire on their own after 10 minutes
            log.warning("could not close RTR session on %s: %s", self.device_id, exc)

    def run(self, base_command: str, *paths: str) -> CommandResult:
        """Run an active-responder command and wait until the sensor reports it complete."""
        command_string = " ".join([base_command, *(quote_path(p) for p in paths)])
        request_id = self.client.run_command(self.session_id, self.device_id, base_command,
                                             command_string)

        def probe() -> dict[str, Any] | None:
            status = self.client.command_status(request_id)
            return status if status.get("complete") is True else None

        status = self.client.wait_for(probe, f"RTR `{base_command}` on host {self.device_id}")
        return CommandResult(base_command, command_string, request_id,
                             str(status.get("stdout") or ""), str(status.get("stderr") or ""))

    def probe(self, path: str) -> Probe:
        """Whether a file is on the host (`filehash`), with its SHA-256 when printed."""
        result = self.run("filehash", path)
        if result.stderr.strip():
            if MISSING.search(result.stderr):
                return Probe(False, None)
            result.check("run RTR command")
        match = SHA256.search(result.stdout)
        return Probe(True, match.group(0).lower() if match else None)

    def collect(self, path: str) -> dict[str, Any] | None:
        """Upload a copy of the file to the Falcon cloud (`get`); the session file record, or
        None when the path does not exist."""
        result = self.run("get", path)
        if result.stderr.strip() and MISSING.search(result.stderr):
            return None
        result.check("collect evidence")

        def probe() -> dict[str, Any] | None:
            files = self.client.session_files(self.session_id)
            for item in files:
                if item.get("cloud_request_id") == result.cloud_request_id:
                    return item
            # Without a cloud_request_id on the records, the newest upload of that path.
            named = [f for f in files if str(f.get("name", "")).lower() == path.lower()
                     and not f.get("cloud_request_id")]
            return named[-1] if named else None

        uploaded = self.client.wait_for(
            probe, f"the upload of {path} (request {result.cloud_request_id})")
        return {**uploaded, "cloud_request_id": result.cloud_request_id}


@dataclass(frozen=True)
class Probe:
    present: bool
    sha256: str | None
