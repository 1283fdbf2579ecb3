"""One OpenAPI document for the whole public API, merged from the backends' own documents.

Every backend serves `/openapi.json` without auth. The merge keeps only operations the routing
table actually sends to that backend (so `/internal/...` and shadowed paths disappear), merges
`components.schemas` (same name + same body = one schema; same name + different bodies = each
prefixed with its service name, `$ref`s rewritten), and adds what the gateway itself adds to every
call: bearer auth, and the 401/403/429 answers in HubSpot's error body.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from typing import Any

import httpx
import orjson
import structlog
from crm_common.errors import ErrorBody
from pydantic import BaseModel

from corral_gateway.routing import resolve

log = structlog.get_logger(__name__)

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
REF_PREFIX = "#/components/schemas/"
ERROR_SCHEMA = "HubSpotError"
RATE_LIMIT_SCHEMA = "HubSpotRateLimitError"


class RateLimitBody(BaseModel):
    """HubSpot's 429 body."""

    status: str = "error"
    message: str
    errorType: str = "RATE_LIMIT"
    correlationId: str
    category: str = "RATE_LIMITS"
    policyName: str
    requestId: str


def _gateway_schemas() -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema

    _, doc = models_json_schema([(ErrorBody, "serialization"), (RateLimitBody, "serialization")],
                                ref_template=REF_PREFIX + "{model}")
    schemas = doc["$defs"]
    renames = {"ErrorBody": ERROR_SCHEMA, "ErrorDetail": "HubSpotErrorDetail", "RateLimitBody": RATE_LIMIT_SCHEMA}
    return {renames.get(k, k): _rewrite_refs(v, renames) for k, v in schemas.items()}


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
                name = value[len(REF_PREFIX):]
                out[key] = REF_PREFIX + renames.get(name, name)
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}/]+\}", "x", path)


def _error_response(description: str, schema: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": REF_PREFIX + schema}}}}


GATEWAY_RESPONSES = {
    "401": _error_response("Missing, invalid or revoked access token", ERROR_SCHEMA),
    "403": _error_response("The token lacks a required scope", ERROR_SCHEMA),
    "429": {**_error_response("Rate limit reached; retry after `Retry-After` seconds", RATE_LIMIT_SCHEMA),
            "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
}

HEALTH_PATHS: dict[str, Any] = {
    "/livez": {"get": {"tags": ["health"], "summary": "Liveness", "operationId": "gateway_livez",
                       "security": [], "responses": {"200": {"description": "The gateway process runs"}}}},
    "/readyz": {"get": {
        "tags": ["health"], "summary": "Readiness: the gateway database and every backend answer",
        "operationId": "gateway_readyz", "security": [],
        "responses": {"200": {"description": "Ready"},
                      "503": {"description": "Not ready; `checks` names what is down"}}}},
}


def _routable_paths(service: str, paths: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for path, item in paths.items():
        ops = {}
        for method in HTTP_METHODS:
            if method in item:
                resolution = resolve(method.upper(), _concrete(path))
                if resolution is not None and resolution.backend == service:
                    ops[method] = item[method]
        if ops:
            kept[path] = {**{k: v for k, v in item.items() if k not in HTTP_METHODS}, **ops}
    return kept


def merge_documents(specs: dict[str, dict[str, Any]], *, warnings: list[str] | None = None,
                    title: str = "Corral API", version: str = "0.1.0") -> dict[str, Any]:
    """Pure: backend documents by service name in, one public document out."""
    specs = {name: copy.deepcopy(spec) for name, spec in specs.items()}
    specs["gateway"] = {"paths": {}, "components": {"schemas": _gateway_schemas()}}
    for name, spec in specs.items():
        spec["paths"] = _routable_paths(name, spec.get("paths") or {}) if name != "gateway" else {}

    # Rename colliding schemas until stable: a rename can make two formerly equal bodies differ.
    renames: dict[str, dict[str, str]] = {name: {} for name in specs}
    while True:
        variants: dict[str, dict[bytes, list[str]]] = {}
        for name, spec in specs.items():
            for schema_name, body in ((spec.get("components") or {}).get("schemas") or {}).items():
                final = renames[name].get(schema_name, schema_name)
                variants.setdefault(final, {}).setdefault(
                    _canonical(_rewrite_refs(body, renames[name])), []).append(name)
        changed = False
        for final, bodies in variants.items():
            if len(bodies) > 1:
                for owners in bodies.values():
                    for owner in owners:
                        original = next((k for k, v in renames[owner].items() if v == final), final)
                        if renames[owner].get(original) != f"{owner}_{original}":
                            renames[owner][original] = f"{owner}_{original}"
                            changed = True
        if not changed:
            break

    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    other_components: dict[str, dict[str, Any]] = {}
    tags: dict[str, Any] = {}
    for name, spec in specs.items():
        spec = _rewrite_refs(spec, renames[name])
        for schema_name, body in ((spec.get("components") or {}).get("schemas") or {}).items():
            schemas.setdefault(renames[name].get(schema_name, schema_name), body)
        for kind, items in (spec.get("components") or {}).items():
            if kind != "schemas":
                for key, value in items.items():
                    other_components.setdefault(kind, {}).setdefault(key, value)
        for path, item in spec["paths"].items():
            target = paths.setdefault(path, {})
            for key, value in item.items():
                target.setdefault(key, value)
        for tag in spec.get("tags") or []:
            tags.setdefault(tag["name"], tag)

    for path, item in paths.items():
        for method in HTTP_METHODS:
            if method in item:
                responses = item[method].setdefault("responses", {})
                for status, response in GATEWAY_RESPONSES.items():
                    responses.setdefault(status, copy.deepcopy(response))
                if "{" in path:  # a path parameter of `.`/`..` (or one naming nothing) answers 404
                    responses.setdefault("404", _error_response("Not found", ERROR_SCHEMA))
    paths.update(copy.deepcopy(HEALTH_PATHS))

    description = (
        "HubSpot-compatible CRM API served by Corral. Authenticate with a private-app style token: "
        "`Authorization: Bearer <token>`. Limits per token: a rolling 10-second window and a daily "
        "count, reported in `X-HubSpot-RateLimit-*` headers."
    )
    if warnings:
        description += "\n\n**Warning: this document is incomplete.** " + " ".join(warnings)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            **other_components,
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {**other_components.get("securitySchemes", {}),
                                "bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "A Corral access token (`pat-corral-...`)"}},
        },
        "security": [{"bearerAuth": []}],
    }
    if tags:
        document["tags"] = list(tags.values())
    return document


class OpenAPIMerger:
    """Fetches and merges the backends' documents; cached, and tolerant of a backend being down."""

    def __init__(self, *, client: httpx.AsyncClient, backends: dict[str, str], ttl: float,
                 timeout: float) -> None:
        self._client = client
        self._backends = backends
        self._ttl = ttl
        self._timeout = timeout
        self._last_good: dict[str, dict[str, Any]] = {}
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self, name: str, base_url: str) -> dict[str, Any] | str:
        try:
            response = await self._client.get(f"{base_url.rstrip('/')}/openapi.json", timeout=self._timeout)
            if response.status_code != 200:
                return f"HTTP {response.status_code}"
            return response.json()
        except Exception as exc:  # noqa: BLE001 - any failure means "not available"
            return exc.__class__.__name__

    async def document(self) -> dict[str, Any]:
        cached = self._cached
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self._lock:
            cached = self._cached
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
            names = list(self._backends)
            results = await asyncio.gather(*(self._fetch(n, self._backends[n]) for n in names))
            warnings = []
            for name, result in zip(names, results, strict=True):
                if isinstance(result, dict):
                    self._last_good[name] = result
                elif name in self._last_good:
                    warnings.append(f"The {name} service is unavailable ({result}); its operations are "
                                    f"from an earlier copy.")
                else:
                    warnings.append(f"The {name} service is unavailable ({result}); its operations are missing.")
            if warnings:
                log.warning("openapi merge incomplete", warnings=warnings)
            document = merge_documents(self._last_good, warnings=warnings)
            # An incomplete document is retried sooner, so the docs heal soon after a backend returns.
            ttl = self._ttl if not warnings else min(self._ttl, 5.0)
            self._cached = (time.monotonic() + ttl, document)
            return document
