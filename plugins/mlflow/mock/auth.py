"""MLflow's basic-auth app (users and model permissions), in the
v3 shape of MLflow 3.17 (`/api/3.0/mlflow/users/permissions/*`) or the legacy shape of earlier
releases (`/api/2.0/mlflow/registered-models/permissions/*`). A server without the auth app, or
with the other shape, answers those routes with Flask's HTML 404, as MLflow does.
"""

from __future__ import annotations

from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from .base import HTML_404, MlflowMockBase

V3 = "/api/3.0/mlflow/users/permissions"
LEGACY = "/api/2.0/mlflow/registered-models/permissions"
RESOURCE_TYPE = "registered_model"


class AuthAppRoutes(MlflowMockBase):
    """The auth app's endpoints: users, and model permissions in the v3 or legacy shape."""

    def auth_route(self, request: Request, shape: str | None) -> Response | None:
        """The HTML 404 unless the auth app runs in `shape` (None: any), else the guard."""
        if self.auth != "basic" or (shape is not None and self.auth_api != shape):
            return Response(HTML_404, status=404, content_type="text/html; charset=utf-8")
        return None

    def known_user(self, username: str) -> Response | None:
        if username in self.users:
            return None
        return self.mlflow_error(404, f"User with username={username} not found")

    # users --------------------------------------------------------------------------------------

    @route("GET", "/api/2.0/mlflow/users/get")
    def get_user(self, request: Request) -> Any:
        args = self.params(request, "username")
        refused = self.auth_route(request, None) or (
            args if isinstance(args, Response) else None)
        if refused is not None:
            return refused
        assert isinstance(args, dict)
        denied = self.guard(request, "", "admin") or self.known_user(args["username"])
        if denied:
            return denied
        user = self.users[args["username"]]
        body: dict[str, Any] = {"id": user["id"], "username": args["username"],
                                "is_admin": user["is_admin"]}
        if self.auth_api == "legacy":
            body["experiment_permissions"] = []
            body["registered_model_permissions"] = [
                {"name": m, "user_id": str(user["id"]), "permission": p}
                for (u, m), p in sorted(self.grants.items()) if u == args["username"]]
        return {"user": body}

    # v3 (MLflow 3.17+) --------------------------------------------------------------------------

    @route("GET", f"{V3}/list")
    def v3_list(self, request: Request) -> Any:
        args = self.params(request, "username")
        refused = self.auth_route(request, "v3") or (
            args if isinstance(args, Response) else None)
        if refused is not None:
            return refused
        assert isinstance(args, dict)
        username = args["username"]
        denied = self.guard(request, "", "admin") or self.known_user(username)
        if denied:
            return denied
        user = self.users[username]
        role = f"__user_{user['id']}__"
        return {"is_admin": user["is_admin"], "permissions": [
            {"permission": p, "resource_pattern": m, "resource_type": RESOURCE_TYPE,
             "role_id": user["id"], "role_name": role, "workspace": "default"}
            for (u, m), p in sorted(self.grants.items()) if u == username]}

    @route("GET", f"{V3}/get")
    def v3_get(self, request: Request) -> Any:
        args = self.params(request, "username", "resource_type", "resource_id")
        refused = self.auth_route(request, "v3") or (
            args if isinstance(args, Response) else None)
        if refused is not None:
            return refused
        assert isinstance(args, dict)
        denied = self.guard(request, "", "admin") or self.known_user(args["username"])
        if denied:
            return denied
        permission = self.permission(args["username"], args["resource_id"])
        return {"allowed": permission in ("USE", "EDIT", "MANAGE"), "permission": permission}

    @route("POST", f"{V3}/grant")
    def v3_grant(self, request: Request) -> Any:
        args = self.params(request, "username", "resource_type", "resource_id", "permission")
        refused = self.auth_route(request, "v3") or (
            args if isinstance(args, Response) else None)
        if refused is not None:
            return refused
        assert isinstance(args, dict)
        key = (args["username"], args["resource_id"])
        denied = (self.guard(request, args["resource_id"], "manage")
                  or self.known_user(args["username"]))
        if denied:
            return denied
        if args["permission"] not in ("READ", "USE", "EDIT", "MANAGE", "DENY"):
            return self.mlflow_error(400, f"Invalid permission '{args['permission']}' for "
                                          f"resource_type='{RESOURCE_TYPE}'.")
        if key in self.grants:
            return self.mlflow_error(400, f"Permission for user={key[0]} on resource_type="
                                          f"{RESOURCE_TYPE}, resource_id={key[1]} already exists.",
                                     "RESOURCE_ALREADY_EXISTS")
        self.grants[key] = args["permission"]
        return {}

    @route("POST", f"{V3}/revoke")
    def v3_revoke(self, request: Request) -> Any:
        args = self.params(request, "username", "resource_type", "resource_id")
        refused = self.auth_route(request, "v3") or (
            args if isinstance(args, Response) else None)
        if refused is not None:
            return refused
        assert isinstance(args, dict)
        key = (args["username"], args["resource_id"])
        denied = (self.guard(request, args["resource_id"], "manage")
                  or self.known_user(args["username"]))
        if denied:
            return denied
        if key not in self.grants:
            return self.mlflow_error(404, f"Permission for user={key[0]} on resource_type="
                                          f"{RESOURCE_TYPE}, resource_id={key[1]} not found.")
        del self.grants[key]
        return {}

    # legacy (MLflow up to 3.16) -----------------------------------------------------------------

    def legacy_args(self, request: Request, *names: str) -> dict[str, str] | Response:
        args = self.params(request, "name", "username", *names)
        refused = self.auth_route(request, "legacy") or (
            args if isinstance(args, Response) else None)
        if refused is not None:
            return refused
        assert isinstance(args, dict)
        return (self.guard(request, args["name"], "manage") or self.known_user(args["username"])
                or args)

    def legacy_row(self, name: str, username: str) -> dict[str, Any]:
        return {"registered_model_permission": {
            "name": name, "user_id": str(self.users[username]["id"]),
            "permission": self.grants[(username, name)]}}

    def missing_row(self, name: str, username: str) -> Response:
        return self.mlflow_error(404, f"Registered model permission with name={name} and "
                                      f"username={username} not found")

    @route("GET", f"{LEGACY}/get")
    def legacy_get(self, request: Request) -> Any:
        args = self.legacy_args(request)
        if isinstance(args, Response):
            return args
        if (args["username"], args["name"]) not in self.grants:
            return self.missing_row(args["name"], args["username"])
        return self.legacy_row(args["name"], args["username"])

    @route("POST", f"{LEGACY}/create")
    def legacy_create(self, request: Request) -> Any:
        args = self.legacy_args(request, "permission")
        if isinstance(args, Response):
            return args
        key = (args["username"], args["name"])
        if key in self.grants:
            return self.mlflow_error(400, f"Registered model permission (name={key[1]}, "
                                          f"username={key[0]}) already exists.",
                                     "RESOURCE_ALREADY_EXISTS")
        self.grants[key] = args["permission"]
        return self.legacy_row(args["name"], args["username"])

    @route("PATCH", f"{LEGACY}/update")
    def legacy_update(self, request: Request) -> Any:
        args = self.legacy_args(request, "permission")
        if isinstance(args, Response):
            return args
        key = (args["username"], args["name"])
        if key not in self.grants:
            return self.missing_row(args["name"], args["username"])
        self.grants[key] = args["permission"]
        return {}

    @route("DELETE", f"{LEGACY}/delete")
    def legacy_delete(self, request: Request) -> Any:
        args = self.legacy_args(request)
        if isinstance(args, Response):
            return args
        key = (args["username"], args["name"])
        if key not in self.grants:
            return self.missing_row(args["name"], args["username"])
        del self.grants[key]
        return {}
