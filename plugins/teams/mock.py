"""A mock of the two Teams webhook kinds.

- Workflows: `POST /workflows/{id}/triggers/manual/paths/invoke?api-version=...&sp=...&sv=1.0&sig=`.
  Logic Apps answers 202 Accepted with an `x-ms-workflow-run-id` and runs the flow afterwards:
  a card the "Post card in a chat or channel" step cannot use makes the *run* fail, not the
  request (see `runs`). Errors: 401 DirectApiAuthorizationRequired (no sig),
  401 DirectApiInvalidAuthorizationSignature (wrong sig), 404 WorkflowNotFound, 400
  InvalidRequestContent, 429 with Retry-After (injected).
- Classic incoming webhook: `POST /webhookb2/{group}@{tenant}/IncomingWebhook/{hook}/{owner}`,
  200 with body `1`; `fail_connector_with(status)` makes the next answer the 200-with-error text
  Teams sends for the failures it considers retryable.

Error codes and texts follow the Logic Apps error shape `{"error": {"code", "message"}}`; they
are [KNOWN] public behaviour, not read from a Microsoft spec.
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import MockServer, route
from crownguard.plugins.teams.cards import CARD_CONTENT_TYPE

API_VERSION = "2016-06-01"
_ERRORS = {
    429: ("WorkflowRequestsThrottled",
          "Number of requests exceeded the limit of 100 over time window of '00:05:00'."),
    500: ("InternalServerError", "Encountered an internal server error."),
    502: ("BadGateway", "The server received an invalid response from an upstream server."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
}


class TeamsMock(MockServer):
    """One Workflows flow posting to a channel, and one classic connector."""

    vendor = "teams"

    def reset_state(self) -> None:
        self.workflow_id = uuid.uuid4().hex
        self.sig = secrets.token_urlsafe(32)
        self.connector = (f"{uuid.uuid4()}@{uuid.uuid4()}", uuid.uuid4().hex, str(uuid.uuid4()))
        self.runs: list[dict[str, Any]] = []            # Workflows flow runs
        self.channel: list[dict[str, Any]] = []         # cards that reached the channel
        self._connector_failures: list[int] = []

    # helpers ----------------------------------------------------------------------------------

    def workflow_url(self, sig: str | None = None) -> str:
        signature = self.sig if sig is None else sig
        return (f"{self.base_url}/workflows/{self.workflow_id}/triggers/manual/paths/invoke"
                f"?api-version={API_VERSION}&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0"
                f"&sig={signature}")

    def connector_url(self) -> str:
        group, hook, owner = self.connector
        return f"{self.base_url}/webhookb2/{group}/IncomingWebhook/{hook}/{owner}"

    def connection_settings(self) -> dict[str, Any]:
        return {"webhook_url": self.workflow_url()}

    def fail_connector_with(self, status: int, times: int = 1) -> None:
        """The connector's next answers: 200 with "... returned HTTP error <status> ..."."""
        with self.state_lock:
            self._connector_failures.extend([status] * times)

    def error_body(self, status: int) -> Any:
        code, message = _ERRORS.get(status, ("BadRequest", f"HTTP {status}"))
        return {"error": {"code": code, "message": message}}

    # Workflows ----------------------------------------------------------------------------------

    @staticmethod
    def _logic_error(status: int, code: str, message: str) -> Response:
        return MockServer.json_response({"error": {"code": code, "message": message}}, status)

    @route("POST", "/workflows/{workflow_id}/triggers/manual/paths/invoke")
    def invoke(self, request: Request, workflow_id: str) -> Response:
        if workflow_id != self.workflow_id:
            return self._logic_error(404, "WorkflowNotFound",
                                     f"The workflow '{workflow_id}' could not be found.")
        if not request.args.get("api-version"):
            return self._logic_error(400, "MissingApiVersionParameter",
                                     "The api-version query parameter (?api-version=) is "
                                     "required for all requests.")
        sig = request.args.get("sig")
        if not sig:
            return self._logic_error(401, "DirectApiAuthorizationRequired",
                                     "The request must be authenticated only by Shared Access "
                                     "scheme.")
        if not secrets.compare_digest(sig, self.sig):
            return self._logic_error(401, "DirectApiInvalidAuthorizationSignature",
                                     "The provided authorization signature is not valid.")
        try:
            body = json.loads(request.get_data() or b"")
        except ValueError:
            return self._logic_error(400, "InvalidRequestContent",
                                     "The request content is not valid and could not be "
                                     "deserialized.")
        run_id = f"08584{secrets.randbelow(10**15):015d}CU{secrets.randbelow(100):02d}"
        problem = card_problem(body)
        self.runs.append({"run_id": run_id, "status": "Failed" if problem else "Succeeded",
                          "error": problem, "body": body})
        if problem is None:
            self.channel.extend(a["content"] for a in body["attachments"])
        return Response(b"", status=202, headers={
            "x-ms-workflow-run-id": run_id, "x-ms-correlation-id": str(uuid.uuid4()),
            "x-ms-request-id": str(uuid.uuid4())})

    # classic incoming webhook -------------------------------------------------------------------

    @route("POST", "/webhookb2/{group}/IncomingWebhook/{hook}/{owner}")
    def incoming_webhook(self, request: Request, group: str, hook: str,
                         owner: str) -> Response:
        if (group, hook, owner) != self.connector:
            return Response(b"Connector configuration not found", status=404,
                            content_type="text/plain; charset=utf-8")
        if self._connector_failures:
            status = self._connector_failures.pop(0)
            text = (f"Webhook message delivery failed with error: Microsoft Teams endpoint "
                    f"returned HTTP error {status} with ContextId tcid=0,server=msgapi-"
                    f"production-weu-01,cv={secrets.token_urlsafe(16)}.0..")
            return Response(text.encode(), status=200, content_type="text/plain; charset=utf-8")
        try:
            body = json.loads(request.get_data() or b"")
        except ValueError:
            body = None
        problem = card_problem(body) if isinstance(body, dict) else "not JSON"
        if problem is not None:
            return Response(b"Bad payload received by generic incoming webhook.", status=400,
                            content_type="text/plain; charset=utf-8")
        self.channel.extend(a["content"] for a in body["attachments"])
        return Response(b"1", status=200, content_type="text/plain; charset=utf-8")


def card_problem(body: Any) -> str | None:
    """Why the flow's "post card" step (or the connector) could not use this body, if so."""
    if not isinstance(body, dict) or body.get("type") != "message":
        return "the body is not a message"
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "the message has no attachments"
    for attachment in attachments:
        if not isinstance(attachment, dict) \
                or attachment.get("contentType") != CARD_CONTENT_TYPE:
            return "an attachment is not an Adaptive Card"
        content = attachment.get("content")
        if not isinstance(content, dict) or content.get("type") != "AdaptiveCard" \
                or not isinstance(content.get("body"), list) or not content.get("version"):
            return "an Adaptive Card lacks type, version or body"
    return None
