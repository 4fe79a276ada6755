"""The crownguard exception tree: every exception of the core is defined here.

    CrownguardError
    ├── SpecError              a playbook, event or config file is invalid (carries problems)
    │   └── EventError             an event is malformed; every problem names the field (triage)
    ├── ConfigError            the connections file or a secret reference is unusable
    ├── PluginError            a plugin failed to load or registered something invalid
    ├── UsageError             bad command-line use or unusable input (the CLI)
    │   └── OperatorError          an operator name that cannot be recorded (--by, a token)
    ├── ExpressionError        a ${{ }} or JMESPath expression does not parse or fails
    ├── TransitionError        an event the step's status does not allow (a corrupt journal)
    ├── JournalError           the journal cannot do what was asked (busy, corrupt, bad event)
    │   ├── UnknownRun             no run with that id (or id prefix)
    │   ├── RunHeldElsewhere       another live process holds the run's lease
    │   ├── JournalUnavailable     its database cannot be reached now (retry later)
    │   └── RunEnded               the run was cancelled, or ended before it could be
    ├── RunsError              an operation on runs (engine.runs) cannot do what was asked
    │   ├── AmbiguousRun           a run id prefix matches more than one run
    │   └── RunStateError          the run's state does not allow it (ended, not waiting...)
    ├── UndoError              a run cannot be undone as asked
    ├── ScenarioError          a scenario cannot be set up (unknown mock, seeding section...)
    ├── MockServerError        a mock server misused: started twice, an unknown fault or section
    ├── UnsafeURL              a URL that is not plain http(s), or parsers read as other hosts
    ├── ActionError            a step's action failed
    │   ├── InputError         inputs or outputs violate the action's schema (never retried)
    │   ├── StepTimeout        the step's timeout_seconds passed (retryable)
    │   ├── HostNotAllowed     an outbound host is not allowed by the connections file
    │   └── VendorError        a vendor API answered with an error or not at all
    │       ├── AuthError          401/403: wrong credentials or missing scope
    │       ├── NotFoundError      404: unknown user, host, record
    │       ├── ConflictError      409 and other non-retryable 4xx
    │       ├── RateLimited        429 (retryable, carries retry_after)
    │       ├── ServerError        5xx (retryable)
    │       ├── TransportError     connection refused/reset, DNS, read or connect timeout
    │       └── BadResponse        the vendor's body is not what its API promises
    ├── RoutingError           the routing set-up is unusable (two playbooks of one name...)
    ├── FingerprintIndexError  the fingerprint index file cannot be opened or is not one
    └── TriageInputError       the event file or an option of triage, respond or test

    EventError and the last three are the triage wing's, at the end of this file.

    Outside the tree, internal signals that never reach a user as such:
    NotCanonical (a ValueError: a journal payload canonical JSON cannot hold; the journal
    turns it into a JournalError), ScenarioFailed (a pytest scenario item's failure),
    BodyTooLarge and Expired (the transport's: the HTTP layer turns them into BadResponse and
    TransportError). Modules keep private signals of their own (`_NotJSON`, `_Failed`...)
    that never leave them.

Every error message is built from non-secret parts; the HTTP layer redacts known secrets again
before an error leaves it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class CrownguardError(Exception):
    """Root of every error crownguard raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, with a location a person can jump to."""

    file: str
    line: int | None
    message: str
    pointer: str = ""
    group: str = "syntax"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class SpecError(CrownguardError):
    """An input file is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigError(CrownguardError):
    """The connections file, a secret reference or a connection's settings are unusable."""


class PluginError(CrownguardError):
    """A plugin could not be loaded or registered something invalid."""


class UsageError(CrownguardError):
    """Bad command-line use or unusable input."""


class OperatorError(UsageError):
    """An operator name that cannot be recorded: empty, too long, control characters."""


class ExpressionError(CrownguardError):
    """An expression does not parse or fails when evaluated."""

    def __init__(self, expression: str, message: str):
        self.expression = expression
        self.reason = message
        super().__init__(f"expression '{expression}': {message}")


class TransitionError(CrownguardError):
    """An event that the step's current status does not allow (a corrupt or foreign journal)."""


# the journal and the operations on runs -------------------------------------------------------

class JournalError(CrownguardError):
    """The journal cannot do what was asked (busy, corrupt, newer schema, bad event)."""


class UnknownRun(JournalError):
    """No run with that id is in the journal. The message names the run only: the service
    shows it to any viewer, and the journal's file path or database address is no business of
    theirs; `journal` keeps it for a local caller that wants to say where it looked."""

    def __init__(self, run_id: str, journal: str = "") -> None:
        super().__init__(f"no run {run_id} in this journal")
        self.run_id, self.journal = run_id, journal

    def __reduce__(self) -> tuple[type[UnknownRun], tuple[str, str]]:
        return type(self), (self.run_id, self.journal)  # pickled whole (a worker's error)


class RunHeldElsewhere(JournalError):
    """Another live process holds the run's lease: this one must not drive it (it lost it)."""


class JournalUnavailable(JournalError):
    """The journal's database cannot be reached now (down, restarting, the connection lost):
    nothing was decided, and the same operation may be tried again later."""


class RunEnded(JournalError):
    """The run was cancelled and takes no more events, or it had ended before it could be
    cancelled."""


class RunsError(CrownguardError):
    """An operation on runs (resume, answer, cancel, rerun, undo) cannot do what was asked."""


class AmbiguousRun(RunsError):
    """A run id prefix matches more than one run."""


class RunStateError(RunsError):
    """The run's state does not allow the operation (it ended, the step is not waiting, another
    process is running it)."""


class UndoError(CrownguardError):
    """The run cannot be undone as asked."""


# outside the tree -----------------------------------------------------------------------------

class ScenarioError(CrownguardError):
    """A scenario cannot be set up (unknown mock, seeding helper, playbook...)."""


class MockServerError(CrownguardError, RuntimeError):
    """A mock server misused: started twice, stopped when not running, asked for a fault or a
    seeding section it does not know."""


class UnsafeURL(CrownguardError, ValueError):
    """A URL that is not plain http(s), or that parsers could read as different hosts."""


class NotCanonical(ValueError):
    """A payload that canonical JSON cannot represent (NaN, a non-JSON type)."""


class BodyTooLarge(Exception):
    """An answer over the size limit; `size` is its Content-Length or what was read."""

    def __init__(self, size: int, limit: int, declared: bool):
        super().__init__(size, limit, declared)
        self.size, self.limit, self.declared = size, limit, declared


class Expired(Exception):
    """An HTTP exchange's deadline passed: its sockets were shut down."""


class ScenarioFailed(Exception):
    """A scenario's outcome differs from its `expect`."""


# actions --------------------------------------------------------------------------------------

class ActionError(CrownguardError):
    """A step's action failed. `retryable` says whether the step's retry policy may try again."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"type": self.kind, "message": str(self),
                                  "retryable": self.retryable}
        if self.retry_after is not None:
            record["retry_after"] = self.retry_after
        return record


class InputError(ActionError):
    """Inputs or outputs violate the action's JSON Schema."""


class StepTimeout(ActionError):
    """The step's attempt ran past its timeout_seconds."""

    retryable = True


class HostNotAllowed(ActionError):
    """An outbound request names a host the connections file does not allow."""


class VendorError(ActionError):
    """A vendor API call failed. Carries the vendor, operation, HTTP status and request id."""

    def __init__(self, message: str, *, vendor: str, operation: str,
                 status: int | None = None, request_id: str | None = None,
                 retryable: bool | None = None, retry_after: float | None = None,
                 body: Any = None):
        self.vendor = vendor
        self.operation = operation
        self.detail = message  # the vendor's own words, without the context prefix
        self.status = status
        self.request_id = request_id
        self.body = body
        where = f"{vendor} {operation}"
        if status is not None:
            where += f" (HTTP {status})"
        if request_id:
            where += f" [request id {request_id}]"
        super().__init__(f"{where}: {message}", retryable=retryable, retry_after=retry_after)

    def to_record(self) -> dict[str, Any]:
        record = super().to_record()
        record.update(vendor=self.vendor, operation=self.operation, status=self.status)
        if self.request_id:
            record["request_id"] = self.request_id
        return record


class AuthError(VendorError):
    """401/403: wrong credentials or a missing permission scope."""


class NotFoundError(VendorError):
    """404: the user, host or record does not exist."""


class ConflictError(VendorError):
    """A non-retryable 4xx other than 401/403/404 (400, 409, 422...)."""


class RateLimited(VendorError):
    """429: the vendor asks to slow down; retry_after is honoured by the step's retry policy."""

    retryable = True


class ServerError(VendorError):
    """5xx from the vendor."""

    retryable = True


class TransportError(VendorError):
    """No usable HTTP answer: connection refused or reset, DNS failure, timeout."""

    retryable = True


class BadResponse(VendorError):
    """The vendor answered 2xx with a body its API does not promise (malformed JSON...)."""


# --- triage: errors of the triage wing (crownguard.engine.triage and its CLI commands)


class EventError(SpecError):
    """An event (raw or normalised) is malformed; every problem names the field."""

    @classmethod
    def at(cls, field_name: str, message: str, origin: str = "event") -> EventError:
        pointer = "/" + field_name.replace(".", "/")
        return cls([Problem(origin, None, f"{field_name}: {message}", pointer)])

    @property
    def fields(self) -> list[str]:
        return [p.pointer.lstrip("/").replace("/", ".") for p in self.problems]


class RoutingError(CrownguardError):
    """The routing set-up is unusable (two playbooks of one name, a missing index...)."""


class FingerprintIndexError(CrownguardError):
    """The fingerprint index file cannot be opened, or is not a fingerprint index."""


class TriageInputError(CrownguardError):
    """The event file or an option of `triage`, `respond` or `test` cannot be used."""
