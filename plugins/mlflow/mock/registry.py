"""The model registry: model versions, their tags, registered models and aliases."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from .base import API, MlflowMockBase

NAME_FILTER = re.compile(r"""^\s*name\s*=\s*(?:'([^']*)'|"([^"]*)")\s*$""")


class RegistryRoutes(MlflowMockBase):
    """`/api/2.0/mlflow/model-versions/*` and `/api/2.0/mlflow/registered-models/*`."""

    # registry -----------------------------------------------------------------------------------

    @route("GET", "/health")
    def health(self, request: Request) -> Response:
        return Response("OK", content_type="text/plain")

    def _versioned(self, request: Request, permission: str, *extra: str,
                  ) -> tuple[dict[str, str], dict[str, Any]] | Response:
        """A model-version call's parameters (name, version and `extra`) and its version, once
        the caller may `permission` the model; else MLflow's error answer."""
        args = self.params(request, "name", "version", *extra)
        if isinstance(args, Response):
            return args
        denied = self.guard(request, args["name"], permission)
        found = denied or self.find_version(args["name"], args["version"])
        return found if isinstance(found, Response) else (args, found)

    @route("GET", f"{API}/model-versions/get")
    def get_version(self, request: Request) -> Any:
        found = self._versioned(request, "read")
        if isinstance(found, Response):
            return found
        return {"model_version": self.version_json(found[1])}

    @route("GET", f"{API}/model-versions/get-download-uri")
    def download_uri(self, request: Request) -> Any:
        found = self._versioned(request, "read")
        return found if isinstance(found, Response) else {"artifact_uri": found[1]["source"]}

    @route("GET", f"{API}/model-versions/search")
    def search_versions(self, request: Request) -> Any:
        denied = self.guard(request, None, "read")
        if denied:
            return denied
        name = None
        if request.args.get("filter"):
            match = NAME_FILTER.match(request.args["filter"])
            if not match:
                return self.mlflow_error(400, "the mock understands only name = '...' filters")
            name = match.group(1) if match.group(1) is not None else match.group(2)
        try:
            size = int(request.args.get("max_results", 10000))
            token = request.args.get("page_token")
            offset = int(json.loads(base64.b64decode(token))["offset"]) if token else 0
        except (ValueError, KeyError, TypeError, binascii.Error):
            return self.mlflow_error(400, "Invalid page token or max_results")
        matches = [v for model_name in sorted(self.models)
                   for _, v in sorted(self.models[model_name]["versions"].items(),
                                      key=lambda kv: -int(kv[0]))
                   if name is None or model_name == name]
        page = matches[offset:offset + size]
        body: dict[str, Any] = {"model_versions": [self.version_json(v, with_aliases=False)
                                                   for v in page]}
        if offset + size < len(matches):
            body["next_page_token"] = base64.b64encode(
                json.dumps({"offset": offset + size}).encode()).decode()
        return body

    @route("POST", f"{API}/model-versions/set-tag")
    def set_tag(self, request: Request) -> Any:
        found = self._versioned(request, "update", "key")
        if isinstance(found, Response):
            return found
        args, version = found
        version["tags"][args["key"]] = str((request.get_json(silent=True) or {}).get("value", ""))
        return {}

    @route("DELETE", f"{API}/model-versions/delete-tag")
    def delete_tag(self, request: Request) -> Any:
        found = self._versioned(request, "update", "key")
        if isinstance(found, Response):
            return found
        args, version = found
        version["tags"].pop(args["key"], None)
        return {}

    @route("GET", f"{API}/registered-models/get")
    def get_model(self, request: Request) -> Any:
        args = self.params(request, "name")
        if isinstance(args, Response):
            return args
        denied = self.guard(request, args["name"], "read")
        if denied:
            return denied
        model = self.models.get(args["name"])
        if model is None:
            return self.mlflow_error(404, f"Registered Model with name={args['name']} not found")
        body = {"name": args["name"], "creation_timestamp": model["created"],
                "last_updated_timestamp": model["updated"],
                "aliases": [{"alias": a, "version": v}
                            for a, v in sorted(model["aliases"].items())]}
        if model.get("tags"):  # MLflow leaves out an empty list
            body["tags"] = [{"key": k, "value": v} for k, v in sorted(model["tags"].items())]
        return {"registered_model": body}

    @route("GET", f"{API}/registered-models/alias")
    def get_by_alias(self, request: Request) -> Any:
        args = self.params(request, "name", "alias")
        if isinstance(args, Response):
            return args
        denied = self.guard(request, args["name"], "read")
        if denied:
            return denied
        version = self.models.get(args["name"], {}).get("aliases", {}).get(args["alias"])
        if version is None:
            return self.mlflow_error(400, f"Registered model alias {args['alias']} not found.")
        return {"model_version": self.version_json(self.models[args["name"]]["versions"][version])}

    @route("POST", f"{API}/registered-models/alias")
    def set_alias(self, request: Request) -> Any:
        found = self._versioned(request, "update", "alias")
        if isinstance(found, Response):
            return found
        args = found[0]
        self.models[args["name"]]["aliases"][args["alias"]] = args["version"]
        return {}

    @route("DELETE", f"{API}/registered-models/alias")
    def delete_alias(self, request: Request) -> Any:
        args = self.params(request, "name", "alias")
        if isinstance(args, Response):
            return args
        denied = self.guard(request, args["name"], "update")
        if denied:
            return denied
        self.models.get(args["name"], {}).get("aliases", {}).pop(args["alias"], None)
        return {}
