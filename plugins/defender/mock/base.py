"""The Defender mock's core: tenant state, the Entra token endpoint, bearer checks, error
bodies and OData paging. Route groups (machines and machine actions, files) are mixins over
this class; server.DefenderMock is their sum.

Entra v2 client credentials on /{tenant}/oauth2/v2.0/token with AADSTS error bodies; bearer
tokens carrying the app's application permissions (403 `Forbidden` naming the missing one);
machines with OData `$filter` and server-driven paging (`@odata.nextLink`); machine actions
(201 MachineAction) that move Pending -> InProgress -> Succeeded over `action_polls` polls of
GET /api/machineactions/{id} and only then change the machine; case-sensitive action bodies
(InvalidRequestBody, MissingRequiredParameter); a second isolation request while one is
pending answered 400 ActiveRequestAlreadyExists; file profiles by SH-1 or SHA-256.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any
from urllib.parse import urlencode

from werkzeug import Request, Response

from crownguard.engine import (
    ASSERTION_TYPE,
    AssertionRefused,
    MockServer,
    PublicKey,
    public_key_of,
    route,
    thumbprints,
    verify_assertion,
)

from .model import MachineAction, MockMachine, ModelFile, entra_error

TENANT_ID = "9f3c2b1a-7d6e-4f5a-8b9c-0d1e2f3a4b5c"
DEFAULT_CLIENT_ID = "5d0e8c4a-1b2f-4c3d-9e8f-7a6b5c4d3e2f"
DEFAULT_CLIENT_SECRET = "cg-demo-defender-secret~Qv8"  # noqa: S105 - a mock's own credential
ALL_ROLES = frozenset({"Machine.Read.All", "Machine.ReadWrite.All", "Machine.Isolate",
                       "Machine.StopAndQuarantine", "File.Read.All"})
READ_MACHINES = ("Machine.Read.All", "Machine.ReadWrite.All")
SCOPES = {"https://api.securitycenter.microsoft.com/.default",
          "https://api.security.microsoft.com/.default",
          "https://securitycenter.onmicrosoft.com/windowsatpservice/.default"}
ERROR_CODES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
               429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
               503: "ServiceUnavailable"}


class DefenderMockBase(MockServer):
    """State and plumbing shared by every Defender route group."""

    vendor = "defender"

    def seed_machines(self, items: list[dict[str, Any]]) -> None:
        """Scenario seeding: machines and the files on them."""
        for item in items:
            machine = self.add_machine(item["dns_name"], machine_id=item.get("machine_id"))
            for spec in item.get("files") or ():
                self.add_file(machine, str(spec.get("content", "model")).encode(),
                              spec.get("name", "model.safetensors"))

    def reset_state(self) -> None:
        self.tenant_id = TENANT_ID
        self.apps: dict[str, tuple[str, frozenset[str]]] = {
            DEFAULT_CLIENT_ID: (DEFAULT_CLIENT_SECRET, ALL_ROLES)}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.app_keys: dict[str, dict[str, PublicKey]] = {}  # client id -> thumbprint -> key
        self.machines: dict[str, MockMachine] = {}
        self.files: dict[str, ModelFile] = {}  # by sha1
        self.actions: dict[str, MachineAction] = {}
        self.action_polls = 2  # polls of GET /api/machineactions/{id} before it ends
        self.page_size = 10_000  # Defender's page limit; tests lower it to see nextLink
        self._failures: dict[str, str] = {}
        self._expire_countdown: int | None = None
        self._clock = 0
        self._seed()

    def _seed(self) -> None:
        alice = self.add_machine("ws-alice-01.corp.example",
                                 machine_id="1e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d",
                                 lastIpAddress="10.20.1.15")
        self.add_file(alice, b"demo model weights: corp-brain v3",
                      "corp-brain-v3.safetensors")
        self.add_machine("mbp-bob-02.corp.example",
                         machine_id="7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b",
                         osPlatform="macOS", lastIpAddress="10.20.4.33")

    def connection_settings(self) -> dict[str, Any]:
        return {"base_url": self.base_url,
                "token_url": f"{self.base_url}/{self.tenant_id}/oauth2/v2.0/token",
                "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
                "poll_interval_seconds": 0.01, "max_wait_seconds": 30}

    # helpers for tests and the demo --------------------------------------------------------------

    def add_machine(self, dns_name: str, *, machine_id: str | None = None,
                    **fields: Any) -> str:
        with self.state_lock:
            machine = MockMachine(machine_id or (uuid.uuid4().hex + uuid.uuid4().hex)[:40],
                                  dns_name, **fields)
            self.machines[machine.id] = machine
            return machine.id

    def add_file(self, machine_id: str | None, content: bytes,
                 name: str = "model.safetensors") -> ModelFile:
        """Register a file profile (and put the file on a machine, when one is given)."""
        with self.state_lock:
            file = ModelFile.of(content, name)
            self.files[file.sha1] = file
            if machine_id:
                self.machines[machine_id].files.add(file.sha1)
            return file

    def add_app(self, client_id: str, secret: str,
                roles: set[str] | frozenset[str] = ALL_ROLES) -> None:
        with self.state_lock:
            self.apps[client_id] = (secret, frozenset(roles))

    def add_certificate(self, certificate_pem: str, client_id: str = DEFAULT_CLIENT_ID) -> None:
        """Upload a certificate to the app: assertions signed by its key are then accepted."""
        with self.state_lock:
            key = public_key_of(certificate_pem)
            keys = self.app_keys.setdefault(client_id, {})
            for thumbprint in thumbprints(certificate_pem).values():
                keys[thumbprint] = key

    def expire_tokens(self) -> None:
        with self.state_lock:
            self.tokens.clear()

    def expire_tokens_after(self, calls: int) -> None:
        """Once: the tokens issued so far die after `calls` more API calls."""
        with self.state_lock:
            self._expire_countdown = calls

    def fail_next(self, action_type: str, status: str = "Failed") -> None:
        """The next machine action of that type ends with `status` instead of Succeeded."""
        with self.state_lock:
            self._failures[action_type] = status

    def start_action(self, machine_id: str, kind: str, *, scope: str | None = None,
                     sha1: str | None = None) -> MachineAction:
        """A Pending machine action submitted by someone else (the portal, another SOAR)."""
        with self.state_lock:
            return self._new_action(self.machines[machine_id], kind, "portal", scope, sha1)

    def isolate_now(self, machine_id: str, kind: str = "Full") -> MachineAction:
        """A finished Isolate in the machine's history, as if done from the portal."""
        with self.state_lock:
            action = self._new_action(self.machines[machine_id], "Isolate", "portal", kind)
            action.polls_left = 0
            action.finish("Succeeded", self.machines[machine_id], self._tick())
            return action

    def _new_action(self, machine: MockMachine, kind: str, comment: str,
                    scope: str | None = None, sha1: str | None = None) -> MachineAction:
        action = MachineAction(str(uuid.uuid4()), kind, machine.id, machine.dns_name, comment,
                               self._tick(), scope=scope, sha1=sha1,
                               polls_left=self.action_polls,
                               outcome=self._failures.pop(kind, "Succeeded"))
        self.actions[action.id] = action
        return action

    # vendor shapes -----------------------------------------------------------------------------

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def fail(self, status: int, code: str | None = None, message: str = "") -> Response:
        return self.json_response({"error": {"code": code or ERROR_CODES.get(status, "Error"),
                                             "message": message or code or "error",
                                             "target": str(uuid.uuid4())}}, status)

    def error_body(self, status: int) -> Any:
        code = ERROR_CODES.get(status, "Error")
        message = ("Too many requests; retry after the time in the Retry-After header"
                   if status == 429 else f"{code}")
        return {"error": {"code": code, "message": message, "target": str(uuid.uuid4())}}

    def not_found(self, request: Request) -> Response:
        return self.fail(404, "ResourceNotFound", f"Resource {request.path} was not found")

    def page(self, request: Request, entity_set: str, items: list[dict[str, Any]]) -> Response:
        try:
            skip = int(request.args.get("$skip", 0))
            top = int(request.args.get("$top", len(items)))
        except ValueError:
            return self.fail(400, "ODataError", "$skip and $top must be integers")
        window = items[skip:skip + min(top, self.page_size)]
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/api/$metadata#{entity_set}",
                                "value": window}
        if len(window) == self.page_size < top and skip + len(window) < len(items):
            query = dict(request.args.items())
            query["$skip"] = str(skip + len(window))
            if "$top" in query:
                query["$top"] = str(top - len(window))
            body["@odata.nextLink"] = f"{self.base_url}{request.path}?{urlencode(query)}"
        return self.json_response(body)

    # Entra token endpoint ----------------------------------------------------------------------

    @route("POST", "/{tenant}/oauth2/v2.0/token")
    def token(self, request: Request, tenant: str) -> Response:
        form = request.form
        if tenant not in (self.tenant_id, "corp.example"):
            return entra_error(400, "invalid_request", 90002,
                               f"Tenant '{tenant}' not found. Check to make sure you have the "
                               "correct tenant ID and are signing into the correct cloud.")
        if form.get("grant_type") != "client_credentials":
            return entra_error(400, "unsupported_grant_type", 70003,
                               "The app requested an unsupported grant type.")
        if not form.get("scope"):
            return entra_error(400, "invalid_request", 900144, "The request body must contain "
                               "the following parameter: 'scope'.")
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            return entra_error(400, "unauthorized_client", 700016,
                               f"Application with identifier '{form.get('client_id', '')}' "
                               f"was not found in the directory '{tenant}'.")
        if form.get("client_assertion") or form.get("client_assertion_type"):
            refused = self._check_assertion(request, tenant)
            if refused is not None:
                return refused
        elif not form.get("client_secret"):
            return entra_error(401, "invalid_client", 7000218, "The request body must contain "
                               "the following parameter: 'client_assertion' or 'client_secret'.")
        elif app[0] != form.get("client_secret"):
            return entra_error(401, "invalid_client", 7000215,
                               "Invalid client secret provided. Ensure the secret being sent "
                               "in the request is the client secret value, not the client "
                               f"secret ID, for a secret added to app '{form['client_id']}'.")
        if form["scope"] not in SCOPES:
            return entra_error(400, "invalid_scope", 70011, f"The provided value for scope "
                               f"{form['scope']} is not valid.")
        token = uuid.uuid4().hex + uuid.uuid4().hex
        self.tokens[token] = {"roles": app[1]}
        return self.json_response({"token_type": "Bearer", "expires_in": 3599,
                                   "ext_expires_in": 3599, "access_token": token})

    def _check_assertion(self, request: Request, tenant: str) -> Response | None:
        """None when the client assertion is valid for the app and this token endpoint."""
        form = request.form
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return entra_error(400, "invalid_request", 700025, "The client_assertion_type is "
                               f"not supported; use {ASSERTION_TYPE}.")
        client_id = form.get("client_id", "")
        try:
            verify_assertion(form.get("client_assertion", ""),
                             keys=self.app_keys.get(client_id, {}),
                             key_headers=("x5t#S256", "x5t"),
                             audience=request.base_url,  # the endpoint invoked
                             client_id=client_id)
        except AssertionRefused as exc:
            return entra_error(*assertion_error(exc, client_id))
        return None

    def authorize(self, request: Request, *roles: str) -> Response | None:
        """None when the bearer token is valid and holds one of `roles`."""
        if self._expire_countdown is not None:
            if self._expire_countdown <= 0:
                self._expire_countdown = None
                self.tokens.clear()
            else:
                self._expire_countdown -= 1
        header = request.headers.get("Authorization", "")
        grant = self.tokens.get(header[7:] if header.startswith("Bearer ") else "")
        if grant is None:
            return self.fail(401, "Unauthorized", "Authorization has been denied for this "
                                                  "request.")
        if not grant["roles"] & set(roles):
            return self.fail(403, "Forbidden", "The application does not have any of the "
                             f"required application permissions ({', '.join(roles)}) to "
                             "access the resource.")
        return None


def assertion_error(exc: AssertionRefused, client_id: str) -> tuple[int, str, int, str]:
    """Entra's answer to a refused client assertion: (status, error, AADSTS code, text)."""
    try:
        used = base64.urlsafe_b64decode(exc.key_ref + "=" * (-len(exc.key_ref) % 4)).hex()
    except ValueError:
        used = exc.key_ref
    keys = (f"Thumbprint of key used by client: '{used.upper()}', Please visit the Azure "
            "Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id "
            f"'{client_id}'.")
    known = {
        "unknown_key": (700027, "Client assertion contains an invalid signature. [Reason - "
                                f"The key was not found., {keys}]"),
        "bad_signature": (700027, "Client assertion contains an invalid signature. [Reason - "
                                  "The provided signature value did not match the expected "
                                  f"signature value., {keys}]"),
        "issuer": (700021, "Client assertion application identifier doesn't match "
                           "'client_id' parameter."),
        "audience": (700023, "Client assertion audience claim does not match Realm issuer."),
        "expired": (700024, f"Client assertion is not within its valid time range. "
                            f"({exc.detail})"),
        "not_yet_valid": (700024, f"Client assertion is not within its valid time range. "
                                  f"({exc.detail})"),
    }
    code, text = known.get(exc.reason, (50027, "JWT token is invalid or malformed."))
    return 401, "invalid_client", code, text
