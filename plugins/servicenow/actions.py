"""The servicenow actions: open exactly one HR case or incident per incident key, add work
notes once, read and find records, and close what was opened (the undo)."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, ConflictError, action

from . import schemas
from .client import ServiceNowClient

HR_CASE_TABLE = "sn_hr_core_case"
CREATED_FIELDS = ["sys_id", "number", "state", "correlation_display"]
# Closing values differ per table: an incident is resolved (6) with a close code, tasks such as
# HR cases close complete (3). Instances can change these; `state` overrides.
CLOSE_STATE = {"incident": "6"}
CLOSED_STATES = {"incident": frozenset({"6", "7", "8"})}
DEFAULT_CLOSE_STATE = "3"
DEFAULT_CLOSED_STATES = frozenset({"3", "4", "7"})
DEFAULT_CLOSE_CODE = "Solution provided"


# correlation -----------------------------------------------------------------------------------


def correlation_value(ctx: ActionContext, given: str | None) -> str:
    """The value stored in the correlation field: the playbook's incident key, or a key that is
    stable for this step across its retries and resumes."""
    return f"crownguard-{given or ctx.idempotency_key}"


def step_marker(ctx: ActionContext) -> str:
    """Written to correlation_display so a retry can tell its own earlier insert apart from a
    record another run opened for the same incident."""
    return f"crownguard:{ctx.idempotency_key}"


def create_once(client: ServiceNowClient, ctx: ActionContext, table: str,
                values: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Look the correlation key up, insert only when no record carries it."""
    field = inputs.get("correlation_field", "correlation_id")
    key = correlation_value(ctx, inputs.get("correlation_id"))
    fields = [*CREATED_FIELDS, field]
    existing = client.find_one(table, f"{field}={key}^ORDERBYsys_created_on",
                               operation=f"find {table} by {field}", fields=fields)
    if existing is not None:
        record, changed = existing, existing.get("correlation_display") == step_marker(ctx)
    else:
        values = {**values, **(inputs.get("fields") or {}), field: key,
                  "correlation_display": step_marker(ctx)}
        record, changed = client.insert(table, values, operation=f"create {table}",
                                        fields=fields), True
    return {"table": table, "sys_id": str(record["sys_id"]),
            "number": str(record.get("number", "")), "state": str(record.get("state", "")),
            "correlation_id": key, "link": client.record_link(table, str(record["sys_id"])),
            "changed": changed}


def _common_values(inputs: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "short_description": inputs.get("short_description") or inputs["subject"]}
    for name in ("description", "assignment_group", "work_notes"):
        if inputs.get(name):
            values[name] = inputs[name]
    return values


# actions ---------------------------------------------------------------------------------------


@action("servicenow.create_incident", side_effect=True, undo="servicenow.close_record",
        undo_with={"table": "${{ output.table }}", "sys_id": "${{ output.sys_id }}"},
        connection="servicenow", retry=VENDOR_RETRY,
        input_schema=schemas.CREATE_INCIDENT_INPUT, output_schema=schemas.CREATED_OUTPUT)
def create_incident(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Open one incident per incident key (correlation_id), also when the step is retried.

    Looks up `correlation_id` with a sysparm_query before inserting into `incident`, so a retry
    or resume after a lost answer finds the record instead of opening a second one. Pass the
    alert's id as `correlation_id` for one incident per alert across runs; without it the key
    is stable per run and step. `caller` is a sys_user sys_id, user_name or e-mail. `changed`
    is false when the incident already existed. Needs the itil role (insert and read on
    incident). Undo: servicenow.close_record."""
    client = ctx.client(ServiceNowClient)
    values = _common_values(inputs)
    if inputs.get("caller"):
        values["caller_id"] = client.resolve_user(inputs["caller"], operation="find caller")
    for name in ("urgency", "impact", "category"):
        if inputs.get(name) is not None:
            values[name] = str(inputs[name])
    return create_once(client, ctx, "incident", values, inputs)


@action("servicenow.create_hr_case", side_effect=True, undo="servicenow.close_record",
        undo_with={"table": "${{ output.table }}", "sys_id": "${{ output.sys_id }}"},
        connection="servicenow", retry=VENDOR_RETRY,
        input_schema=schemas.CREATE_HR_CASE_INPUT, output_schema=schemas.CREATED_OUTPUT)
def create_hr_case(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Open one HR case (sn_hr_core_case) per incident key, also when the step is retried.

    Same correlation rule as create_incident: `correlation_id` is looked up with a sysparm_query
    before the insert. `subject_person` and `opened_for` (default: the subject person) are
    sys_user sys_ids, user_names or e-mails; `hr_service` is the sys_id of the HR service.
    Field names vary between instances: pass others in `fields`. `changed` is false when the
    case already existed. Needs sn_hr_core.case_writer (insert and read on the HR case table).
    Undo: servicenow.close_record."""
    client = ctx.client(ServiceNowClient)
    table = inputs.get("table", HR_CASE_TABLE)
    values = _common_values(inputs)
    subject = inputs.get("subject_person")
    if subject:
        values["subject_person"] = client.resolve_user(subject, operation="find subject person")
    opened_for = inputs.get("opened_for")
    if opened_for and opened_for != subject:
        values["opened_for"] = client.resolve_user(opened_for, operation="find opened_for user")
    elif subject:
        values["opened_for"] = values["subject_person"]
    if inputs.get("hr_service"):
        values["hr_service"] = inputs["hr_service"]
    if inputs.get("priority") is not None:
        values["priority"] = str(inputs["priority"])
    return create_once(client, ctx, table, values, inputs)


@action("servicenow.add_work_note", side_effect=True, undo=None, connection="servicenow",
        retry=VENDOR_RETRY, input_schema=schemas.ADD_WORK_NOTE_INPUT,
        output_schema=schemas.ADD_WORK_NOTE_OUTPUT)
def add_work_note(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Add a work note to a record once, also when the step is retried.

    The note ends with a `[crownguard:<key>]` reference; the record's work notes are read first
    and a note with that reference is not written again (`changed: false` when `dedupe_key`
    was given and found). The record is given by `sys_id` or `number`. Journal entries cannot be
    removed, so there is no undo."""
    client = ctx.client(ServiceNowClient)
    table = inputs["table"]
    operation = f"add work note to {table}"
    record = client.locate(table, sys_id=inputs.get("sys_id"), number=inputs.get("number"),
                           operation=operation, fields=["sys_id", "number"])
    sys_id = str(record["sys_id"])
    marker = f"[crownguard:{inputs.get('dedupe_key') or ctx.idempotency_key}]"
    journal = client.get(table, sys_id, operation=f"read work notes of {table}",
                         fields=["sys_id", "work_notes"], display_value=True).get("work_notes")
    if isinstance(journal, str) and marker in journal:
        changed = not inputs.get("dedupe_key")  # default key: an earlier attempt of this step
    else:
        client.update(table, sys_id, {"work_notes": f"{inputs['note']}\n\n{marker}"},
                      operation=operation, fields=["sys_id"])
        changed = True
    return {"table": table, "sys_id": sys_id, "number": str(record.get("number", "")),
            "changed": changed}


@action("servicenow.get_record", connection="servicenow", retry=VENDOR_RETRY,
        input_schema=schemas.GET_RECORD_INPUT, output_schema=schemas.GET_RECORD_OUTPUT)
def get_record(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Read one record of a table by sys_id or number.

    `record` holds the requested `fields` (all readable fields by default) as the Table API
    returns them: strings, references as sys_ids. NotFoundError when the record does not exist
    or an ACL hides it."""
    client = ctx.client(ServiceNowClient)
    table = inputs["table"]
    fields = inputs.get("fields")
    if fields:
        fields = sorted({*fields, "sys_id", "number"})
    record = client.locate(table, sys_id=inputs.get("sys_id"), number=inputs.get("number"),
                           operation=f"get {table} record", fields=fields)
    sys_id = str(record["sys_id"])
    return {"table": table, "sys_id": sys_id, "number": str(record.get("number", "")),
            "record": record, "link": client.record_link(table, sys_id)}


@action("servicenow.find_records", connection="servicenow", retry=VENDOR_RETRY,
        input_schema=schemas.FIND_RECORDS_INPUT, output_schema=schemas.FIND_RECORDS_OUTPUT)
def find_records(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Records of a table matching an encoded query, following the instance's pages.

    Pages are read with sysparm_limit/sysparm_offset through the `Link: rel="next"` header
    until `max_records` (default 100) are read; `truncated` says more were there."""
    client = ctx.client(ServiceNowClient)
    table, limit = inputs["table"], int(inputs.get("max_records", 100))
    records = list(client.iter_records(table, query=inputs["query"], fields=inputs.get("fields"),
                                       limit=limit + 1, operation=f"find {table} records"))
    return {"table": table, "records": records[:limit], "count": min(len(records), limit),
            "truncated": len(records) > limit}


@action("servicenow.close_record", side_effect=True, undo=None, connection="servicenow",
        retry=VENDOR_RETRY, input_schema=schemas.CLOSE_RECORD_INPUT,
        output_schema=schemas.CLOSE_RECORD_OUTPUT)
def close_record(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Close an incident or HR case with a note: the undo of create_incident/create_hr_case.

    An incident is resolved (state 6) with `close_code` (default 'Solution provided') and
    `close_notes`; an HR case or other task is set to Closed Complete (3). Takes the create
    action's output (`table`, `sys_id`). `changed` is false when the record was already closed.
    A ConflictError says when the instance kept its state (a business rule refused)."""
    client = ctx.client(ServiceNowClient)
    table = inputs["table"]
    operation = f"close {table} record"
    fields = ["sys_id", "number", "state"]
    record = client.locate(table, sys_id=inputs.get("sys_id"), number=inputs.get("number"),
                           operation=operation, fields=fields)
    target = inputs.get("state") or CLOSE_STATE.get(table, DEFAULT_CLOSE_STATE)
    closed = CLOSED_STATES.get(table, DEFAULT_CLOSED_STATES) | {target}
    sys_id, state = str(record["sys_id"]), str(record.get("state", ""))
    result = {"table": table, "sys_id": sys_id, "number": str(record.get("number", ""))}
    if state in closed:
        return {**result, "state": state, "changed": False}
    values = {"state": target, "close_notes": inputs.get(
        "close_notes", schemas.CLOSE_RECORD_INPUT["properties"]["close_notes"]["default"])}
    if table == "incident" or inputs.get("close_code"):
        values["close_code"] = inputs.get("close_code") or DEFAULT_CLOSE_CODE
    updated = client.update(table, sys_id, values, operation=operation, fields=fields)
    if str(updated.get("state", "")) != target:
        raise ConflictError(f"the instance kept state {updated.get('state')!r} instead of "
                            f"{target!r} (a business rule or data policy refused to close)",
                            vendor=client.vendor, operation=operation)
    return {**result, "state": target, "changed": True}


ACTIONS = (create_incident, create_hr_case, add_work_note, get_record, find_records,
           close_record)
