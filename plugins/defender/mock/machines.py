"""Machines in the Defender mock: OData machine queries, machine actions (isolate,
unisolate, stop and quarantine) that settle over `action_polls` polls, and their history."""

from __future__ import annotations

from werkzeug import Request, Response

from crownguard.engine import route

from .base import READ_MACHINES, DefenderMockBase
from .model import ISOLATION, MockMachine
from .odata import compile_filter

MACHINE_FILTERS = ("computerDnsName", "id", "version", "deviceValue", "aadDeviceId",
                   "machineTags", "lastSeen", "exposureLevel", "onboardingStatus",
                   "lastIpAddress", "healthStatus", "osPlatform", "riskScore", "rbacGroupId")
ACTION_FILTERS = ("id", "status", "machineId", "type", "requestor", "creationDateTimeUtc")


class MachineRoutes(DefenderMockBase):
    """`/api/machines` and `/api/machineactions`."""

    # machines ----------------------------------------------------------------------------------

    @route("GET", "/api/machines")
    def list_machines(self, request: Request) -> Response:
        if denied := self.authorize(request, *READ_MACHINES):
            return denied
        items = [m.entity() for m in self.machines.values()]
        if request.args.get("$filter"):
            try:
                matches = compile_filter(request.args["$filter"], MACHINE_FILTERS)
            except ValueError as exc:
                return self.fail(400, "ODataError", f"Invalid filter clause: {exc}")
            items = [m for m in items if matches(m)]
        return self.page(request, "Machines", items)

    def _machine(self, machine_id: str) -> MockMachine | Response:
        machine = self.machines.get(machine_id.lower())
        if machine is None:
            return self.fail(404, "ResourceNotFound", f"Machine {machine_id} was not found")
        return machine

    @route("GET", "/api/machines/{machine_id}")
    def get_machine(self, request: Request, machine_id: str) -> Response:
        if denied := self.authorize(request, *READ_MACHINES):
            return denied
        machine = self._machine(machine_id)
        if isinstance(machine, Response):
            return machine
        return self.json_response({"@odata.context": f"{self.base_url}/api/$metadata"
                                                     "#Machines/$entity", **machine.entity()})

    def _action_request(self, request: Request, machine_id: str, kind: str,
                        fields: dict[str, str]) -> Response:
        """Shared checks of POST /api/machines/{id}/<action>: body keys are case-sensitive."""
        machine = self._machine(machine_id)
        if isinstance(machine, Response):
            return machine
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.fail(400, "InvalidRequestBody", "Request body is not valid JSON")
        unknown = set(body) - set(fields)
        if unknown:
            return self.fail(400, "InvalidRequestBody",
                             f"Unknown parameter(s): {', '.join(sorted(unknown))}")
        for name, rule in fields.items():
            if rule == "required" and not body.get(name):
                return self.fail(400, "MissingRequiredParameter",
                                 f"Parameter {name} is missing")
        if kind == "Isolate" and body.get("IsolationType", "Full") not in (
                "Full", "Selective", "UnManagedDevice"):
            return self.fail(400, "InvalidInput", "IsolationType must be Full or Selective")
        if kind == "StopAndQuarantineFile" and not _is_sha1(str(body.get("Sha1", ""))):
            return self.fail(400, "InvalidHashValue", "Sha1 must be a SHA-1 hash")
        if kind in ISOLATION and any(a.machine_id == machine.id and a.type in ISOLATION
                                     and a.running for a in self.actions.values()):
            return self.fail(400, "ActiveRequestAlreadyExists", "Action is already in progress")
        action = self._new_action(machine, kind, str(body.get("Comment")),
                                  str(body.get("IsolationType", "Full"))
                                  if kind == "Isolate" else None,
                                  str(body["Sha1"]).lower() if "Sha1" in body else None)
        return self.json_response(action.entity(self.base_url), 201)

    @route("POST", "/api/machines/{machine_id}/isolate")
    def isolate(self, request: Request, machine_id: str) -> Response:
        if denied := self.authorize(request, "Machine.Isolate"):
            return denied
        return self._action_request(request, machine_id, "Isolate",
                                    {"Comment": "required", "IsolationType": "optional"})

    @route("POST", "/api/machines/{machine_id}/unisolate")
    def unisolate(self, request: Request, machine_id: str) -> Response:
        if denied := self.authorize(request, "Machine.Isolate"):
            return denied
        return self._action_request(request, machine_id, "Unisolate", {"Comment": "required"})

    @route("POST", "/api/machines/{machine_id}/StopAndQuarantineFile")
    def stop_and_quarantine(self, request: Request, machine_id: str) -> Response:
        if denied := self.authorize(request, "Machine.StopAndQuarantine"):
            return denied
        return self._action_request(request, machine_id, "StopAndQuarantineFile",
                                    {"Comment": "required", "Sha1": "required"})

    # machine actions ---------------------------------------------------------------------------

    @route("GET", "/api/machineactions")
    def list_actions(self, request: Request) -> Response:
        if denied := self.authorize(request, *READ_MACHINES):
            return denied
        items = [a.entity(self.base_url, with_context=False) for a in self.actions.values()]
        if request.args.get("$filter"):
            try:
                matches = compile_filter(request.args["$filter"], ACTION_FILTERS)
            except ValueError as exc:
                return self.fail(400, "ODataError", f"Invalid filter clause: {exc}")
            items = [a for a in items if matches(a)]
        return self.page(request, "MachineActions", items)

    @route("GET", "/api/machineactions/{action_id}")
    def get_action(self, request: Request, action_id: str) -> Response:
        if denied := self.authorize(request, *READ_MACHINES):
            return denied
        action = self.actions.get(action_id)
        if action is None:
            return self.fail(404, "ResourceNotFound", f"Machine action {action_id} was not "
                                                      "found")
        action.poll(self.machines[action.machine_id], self._tick())
        return self.json_response(action.entity(self.base_url))

    @route("POST", "/api/machineactions/{action_id}/cancel")
    def cancel_action(self, request: Request, action_id: str) -> Response:
        if denied := self.authorize(request, "Machine.Isolate", "Machine.StopAndQuarantine"):
            return denied
        action = self.actions.get(action_id)
        if action is None:
            return self.fail(404, "ResourceNotFound", f"Machine action {action_id} was not "
                                                      "found")
        if action.running:
            action.status = "Cancelled"
        return self.json_response(action.entity(self.base_url))

def _is_sha1(value: str) -> bool:
    return len(value) == 40 and all(c in "0123456789abcdefABCDEF" for c in value)
