"""The Table API of the ServiceNow mock: `/api/now/table/{table}` list (encoded queries,
sysparm_limit/offset paging with `Link` and `X-Total-Count`), get, insert and update, with
ACLs by role, journal fields and the incident resolution data policy."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from werkzeug import Request, Response

from crownguard.engine import route

from .base import (
    JOURNAL_FIELDS,
    READ_ONLY,
    TABLES,
    USER_KEY,
    ServiceNowMockBase,
    Table,
    failure,
    now_iso,
)
from .query import parse_query


class TableRoutes(ServiceNowMockBase):
    """`/api/now/table/...`."""

    def _table(self, name: str) -> Table | Response:
        table = TABLES.get(name)
        if table is None:
            return self.json_response(failure(f"Invalid table {name}", None), 400)
        return table

    def _may(self, request: Request, roles: frozenset[str]) -> bool:
        user = request.environ.get(USER_KEY, "")
        return not roles or bool(self.accounts.get(user, {}).get("roles", set()) & roles)

    def _render(self, table: str, record: dict[str, str], request: Request) -> dict[str, Any]:
        display = request.args.get("sysparm_display_value", "false") in ("true", "all")
        exclude_links = request.args.get("sysparm_exclude_reference_link") == "true"
        wanted = [f for f in request.args.get("sysparm_fields", "").split(",") if f]
        out: dict[str, Any] = {}
        for field in wanted or sorted(TABLES[table].fields):
            if field not in TABLES[table].fields:
                continue
            value: Any = record.get(field, "")
            if field in JOURNAL_FIELDS:
                value = self._journal_text(record["sys_id"], field) if display else ""
            elif field == "state" and display:
                value = dict(TABLES[table].states).get(value, value)
            elif field in ("caller_id", "opened_for", "subject_person", "opened_by") \
                    and value and not exclude_links and not display:
                value = {"link": f"{self.base_url}/api/now/table/sys_user/{value}",
                         "value": value}
            out[field] = value
        return out

    def _journal_text(self, sys_id: str, element: str) -> str:
        label = "Work notes" if element == "work_notes" else "Additional comments"
        entries = [e for e in self.journals.get(sys_id, []) if e[0] == element]
        return "\n\n".join(f"{at} - {author} ({label})\n{text}"
                           for _, at, author, text in reversed(entries))

    def _author(self, request: Request) -> str:
        user = request.environ.get(USER_KEY, "")
        for record in self.tables["sys_user"].values():
            if record["user_name"] == user:
                return record["name"]
        return user

    def _apply(self, table: str, record: dict[str, str], values: dict[str, Any],
               request: Request) -> None:
        for field, value in values.items():
            if field not in TABLES[table].fields or field in READ_ONLY:
                continue  # an instance ignores fields it does not know
            text = "" if value is None else str(value).lower() if isinstance(value, bool) \
                else str(value)
            if field in JOURNAL_FIELDS:
                if text:
                    self.journals.setdefault(record["sys_id"], []).append(
                        (field, now_iso(), self._author(request), text))
                continue
            if field == "state" and table in self.frozen_tables and "state" in record:
                continue
            record[field] = text
        record["active"] = "false" if record.get("state") in TABLES[table].closed_states \
            else record.get("active", "true")
        record["sys_updated_on"] = now_iso()
        record["sys_updated_by"] = request.environ.get(USER_KEY, "")

    @route("GET", "/api/now/table/{table}")
    def list_records(self, request: Request, table: str) -> Response:
        spec = self._table(table)
        if isinstance(spec, Response):
            return spec
        try:
            limit = int(request.args.get("sysparm_limit", "10000"))
            offset = int(request.args.get("sysparm_offset", "0"))
        except ValueError:
            return self.json_response(failure("Invalid request", "sysparm_limit and "
                                              "sysparm_offset must be numbers"), 400)
        if offset < 0:
            return self.json_response(failure(f"offset is {offset}",
                                              "Negative offset is not supported"), 400)
        rows: list[dict[str, str]] = []
        if self._may(request, spec.read_roles):  # rows an ACL hides are simply not returned
            query = parse_query(request.args.get("sysparm_query", ""))
            rows = query.sort([r for r in self.tables[table].values() if query.matches(r)])
        page = rows[offset:offset + max(limit, 0)]
        headers = {"X-Total-Count": str(len(rows))}
        link = self._link_header(request, table, len(rows), limit, offset)
        if link:
            headers["Link"] = link
        return self.json_response({"result": [self._render(table, r, request) for r in page]},
                                  200, headers)

    def _link_header(self, request: Request, table: str, total: int, limit: int,
                     offset: int) -> str:
        if limit <= 0 or (total <= limit and offset == 0):
            return ""
        args = {k: v for k, v in request.args.items()
                if k not in ("sysparm_offset", "sysparm_limit")}

        def link(at: int, rel: str) -> str:
            query = urlencode({**args, "sysparm_offset": at, "sysparm_limit": limit})
            return f'<{self.base_url}/api/now/table/{table}?{query}>;rel="{rel}"'

        last = max(0, (total - 1) // limit * limit)
        links = [link(0, "first")]
        if offset > 0:
            links.append(link(max(0, offset - limit), "prev"))
        if offset + limit < total:
            links.append(link(offset + limit, "next"))
        links.append(link(last, "last"))
        return ",".join(links)

    @route("GET", "/api/now/table/{table}/{sys_id}")
    def get_record(self, request: Request, table: str, sys_id: str) -> Response:
        spec = self._table(table)
        if isinstance(spec, Response):
            return spec
        record = self.tables[table].get(sys_id)
        if record is None or not self._may(request, spec.read_roles):
            return self.json_response(self.error_body(404), 404)
        return self.json_response({"result": self._render(table, record, request)})

    @route("POST", "/api/now/table/{table}")
    def insert_record(self, request: Request, table: str) -> Response:
        spec = self._table(table)
        if isinstance(spec, Response):
            return spec
        if not self._may(request, spec.write_roles):
            return self.json_response(self.error_body(403), 403)
        values = request.get_json(silent=True)
        if not isinstance(values, dict):
            return self.json_response(failure("Exception while reading request",
                                              "The payload is not valid JSON."), 400)
        sys_id = uuid.uuid4().hex
        record = {"sys_id": sys_id, "sys_created_on": now_iso(), "sys_class_name": table,
                  "sys_created_by": request.environ.get(USER_KEY, ""), "active": "true"}
        if spec.prefix:
            record["number"] = f"{spec.prefix}{self.counters[table]:07d}"
            self.counters[table] += 1
            record.update(state=spec.default_state, opened_by=self.integration_sys_id,
                          opened_at=now_iso())
        self.tables[table][sys_id] = record
        self._apply(table, record, values, request)
        return self.json_response(
            {"result": self._render(table, record, request)}, 201,
            {"Location": f"{self.base_url}/api/now/table/{table}/{sys_id}"})

    @route("PATCH", "/api/now/table/{table}/{sys_id}")
    @route("PUT", "/api/now/table/{table}/{sys_id}")
    def update_record(self, request: Request, table: str, sys_id: str) -> Response:
        spec = self._table(table)
        if isinstance(spec, Response):
            return spec
        record = self.tables[table].get(sys_id)
        if record is None or not self._may(request, spec.read_roles | spec.write_roles):
            return self.json_response(self.error_body(404), 404)
        if not self._may(request, spec.write_roles):
            return self.json_response(failure("Operation Failed", "ACL Exception Update Failed "
                                              "due to security constraints"), 403)
        values = request.get_json(silent=True)
        if not isinstance(values, dict):
            return self.json_response(failure("Exception while reading request",
                                              "The payload is not valid JSON."), 400)
        if table == "incident" and str(values.get("state")) == "6":
            missing = [label for field, label in (("close_code", "Resolution code"),
                                                  ("close_notes", "Resolution notes"))
                       if not (values.get(field) or record.get(field))]
            if missing:
                return self.json_response(failure(
                    "Operation Failed", "Data Policy Exception: \n\tThe following fields are "
                    f"mandatory: {', '.join(missing)}"), 403)
        self._apply(table, record, values, request)
        return self.json_response({"result": self._render(table, record, request)})
