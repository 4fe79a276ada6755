"""Real Time Response in the Falcon mock: sessions, active-responder commands acting on a
host's files, command status that turns complete after `rtr_polls` polls, session files."""

from __future__ import annotations

import re
import uuid

from werkzeug import Request, Response

from crownguard.engine import route

from .base import FalconMockBase
from .model import Command, MockHost, Session

ARGUMENT = re.compile(r'"([^"]*)"|(\S+)')
COMMANDS = {"filehash", "get", "rm", "mv", "mkdir", "ls", "cd", "cat", "ps", "netstat"}


def _missing(path: str) -> str:
    return f"Cannot find path '{path}' because it does not exist."


class RtrRoutes(FalconMockBase):
    """`/real-time-response/...`: sessions, active-responder commands and session files."""

    @route("POST", "/real-time-response/entities/sessions/v1")
    def init_session(self, request: Request) -> Response:
        if denied := self.authorize(request, "real-time-response:read"):
            return denied
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("device_id"), str):
            return self.fail(400, "device_id is required")
        host = self.hosts.get(body["device_id"].lower())
        if host is None:
            return self.fail(404, "Could not find device")
        session = Session(str(uuid.uuid4()), host.device_id)
        self.rtr_sessions[session.session_id] = session
        pwd = "C:\\" if host.windows else "/"
        return self.envelope([{"session_id": session.session_id, "scripts": [],
                               "existing_aid_sessions": 1, "created_at": "2026-11-28T09:00:00Z",
                               "pwd": pwd, "offline_queued": False}], 201)

    @route("DELETE", "/real-time-response/entities/sessions/v1")
    def delete_session(self, request: Request) -> Response:
        if denied := self.authorize(request, "real-time-response:read"):
            return denied
        session = self.rtr_sessions.get(request.args.get("session_id", ""))
        if session is None or session.closed:
            return self.fail(404, "session not found")
        session.closed = True
        return Response(status=204)

    @route("POST", "/real-time-response/entities/active-responder-command/v1")
    def run_command(self, request: Request) -> Response:
        if denied := self.authorize(request, "real-time-response:write"):
            return denied
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.fail(400, "body is required")
        base = body.get("base_command")
        line = body.get("command_string")
        session = self.rtr_sessions.get(str(body.get("session_id", "")))
        if not isinstance(base, str) or not isinstance(line, str):
            return self.fail(400, "base_command and command_string are required")
        if session is None or session.closed:
            return self.fail(404, "could not get session", code=50007)
        args = [quoted if quoted or not bare else bare
                for quoted, bare in ARGUMENT.findall(line)]
        if not args or args[0] != base:
            return self.fail(400, "command_string must start with base_command")
        if base not in COMMANDS:
            return self.fail(400, "Command not found", code=40007)
        host = self.hosts[session.device_id]
        command = Command(str(uuid.uuid4()), session.session_id, base, "", "", self.rtr_polls)
        self._execute(host, session, command, args[1:])
        self.rtr_commands[command.cloud_request_id] = command
        return self.envelope([{"session_id": session.session_id,
                               "cloud_request_id": command.cloud_request_id,
                               "queued_command_offline": False}], 201)

    def _execute(self, host: MockHost, session: Session, command: Command,
                 args: list[str]) -> None:
        """Apply the command to the host now; its status reports it complete later."""
        base = command.base_command
        if base in ("filehash", "get", "rm") and len(args) == 1:
            file = host.file(args[0])
            if file is None:
                command.stderr = _missing(args[0])
            elif base == "filehash":
                command.stdout = f"Path: {args[0]}\nMD5: {file.md5}\nSHA256: {file.sha256}\n"
            elif base == "get":
                session.files.append({
                    "id": len(session.files) + 1, "cloud_request_id": command.cloud_request_id,
                    "session_id": session.session_id, "name": args[0], "sha256": file.sha256,
                    "size": file.size, "created_at": "2026-11-28T09:00:05Z",
                    "updated_at": "2026-11-28T09:00:05Z", "deleted_at": None})
            else:
                del host.files[host.key(args[0])]
        elif base == "mv" and len(args) == 2:
            file = host.file(args[0])
            if file is None:
                command.stderr = _missing(args[0])
            elif host.parent(args[1]) not in host.folders:
                command.stderr = f"Could not find a part of the path '{args[1]}'."
            elif host.file(args[1]) is not None:
                command.stderr = f"Cannot create '{args[1]}' because a file already exists."
            else:
                del host.files[host.key(args[0])]
                host.add_file(args[1], file)
        elif base == "mkdir" and len(args) == 1:
            host.folders.add(host.key(args[0]))
        elif base in ("filehash", "get", "rm", "mv", "mkdir"):
            command.stderr = f"{base}: wrong number of arguments"

    @route("GET", "/real-time-response/entities/active-responder-command/v1")
    def command_status(self, request: Request) -> Response:
        if denied := self.authorize(request, "real-time-response:write"):
            return denied
        if "sequence_id" not in request.args:
            return self.fail(400, "sequence_id is required")
        command = self.rtr_commands.get(request.args.get("cloud_request_id", ""))
        if command is None:
            return self.fail(404, "cloud_request_id not found")
        complete = command.polls_left <= 0
        command.polls_left -= 1
        return self.envelope([{
            "session_id": command.session_id, "task_id": command.cloud_request_id,
            "complete": complete, "stdout": command.stdout if complete else "",
            "stderr": command.stderr if complete else "", "base_command": command.base_command,
        }])

    @route("GET", "/real-time-response/entities/file/v2")
    def session_files(self, request: Request) -> Response:
        if denied := self.authorize(request, "real-time-response:read"):
            return denied
        session = self.rtr_sessions.get(request.args.get("session_id", ""))
        if session is None:
            return self.fail(404, "session not found")
        return self.envelope(list(session.files))
