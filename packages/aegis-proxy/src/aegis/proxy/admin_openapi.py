"""The OpenAPI 3.1 document of the admin API, served at ``GET /admin/openapi.json``.

Kept by hand beside the handlers; a test checks that its paths are exactly the admin routes
the app registers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["document"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "404": {"$ref": "#/components/responses/NotFound"},
    "409": {"$ref": "#/components/responses/Conflict"},
    "503": {"$ref": "#/components/responses/Unavailable"},
}
_TENANT_ID = {"name": "tenant_id", "in": "path", "required": True, "schema": {"type": "string"}}
_KEY_ID = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}
_PAGE = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
]


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**responses, **_ERRORS}, **extra}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def document() -> dict[str, Any]:
    """The document (a fresh dict each time)."""
    window = {
        "type": "object",
        "required": ["window", "limit_usd"],
        "additionalProperties": False,
        "properties": {
            "window": {"enum": ["minute", "hour", "day", "month"]},
            "limit_usd": {"type": "string", "examples": ["2.50"]},
        },
    }
    key_fields = {
        "name": {"type": ["string", "null"], "maxLength": 100},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "allow_models": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": "Glob patterns; the tenant's policy must allow the model too.",
        },
        "per_window": {
            "type": ["array", "null"],
            "items": window,
            "description": "This key's own budgets, each at most the tenant's of that window.",
        },
    }
    schemas = {
        "Policy": {
            "type": "object",
            "description": "A tenant table's shape (budgets, routing, model, capabilities, "
            "limits, clamp_max_tokens, min_output_tokens, reservation_ttl_s); see the "
            "aegis-core README.",
        },
        "Tenant": {
            "type": "object",
            "properties": {
                "tenant_id": {"type": "string"},
                "source": {"enum": ["file", "store"]},
                "read_only": {"type": "boolean"},
                "version": {"type": ["integer", "null"]},
                "policy_version": {"type": "string"},
                "policy": _ref("Policy"),
                "api_keys": {"type": "integer"},
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
        "Key": {
            "type": "object",
            "description": "A key's metadata; never its hash.",
            "properties": {
                "key_id": {"type": "string"},
                "tenant_id": {"type": "string"},
                "prefix": {"type": "string"},
                "state": {"enum": ["active", "grace", "revoked", "expired"]},
                "created_at": {"type": "string", "format": "date-time"},
                "revoked_at": {"type": ["string", "null"], "format": "date-time"},
                "rotated_from": {"type": ["string", "null"]},
                "version": {"type": "integer"},
                **key_fields,
            },
        },
        "NewKey": {
            "allOf": [
                _ref("Key"),
                {
                    "type": "object",
                    "properties": {"key": {"type": "string", "description": "Shown once."}},
                },
            ]
        },
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                        "param": {"type": ["string", "null"]},
                        "code": {"type": ["string", "null"]},
                    },
                }
            },
        },
    }
    error = _ref("Error")
    responses = {
        "BadRequest": _json(error, "A field is invalid; `param` names it."),
        "Unauthorized": _json(error, "No admin key, or an unknown one."),
        "Forbidden": _json(error, "A tenant key on the admin API."),
        "NotFound": _json(error, "No such tenant or key (another tenant's key id too)."),
        "Conflict": _json(
            error,
            "`version_conflict` (the record changed since you read it), `tenant_exists`, "
            "`tenant_read_only` (a config-file tenant), `store_disabled`.",
        ),
        "Unavailable": _json(error, "The store or the receipt trail is down: nothing changed."),
    }
    tenant, key = _ref("Tenant"), _ref("Key")
    tenants_page = {
        "type": "object",
        "properties": {
            "tenants": {"type": "array", "items": tenant},
            "total": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    }
    paths: dict[str, Any] = {
        "/admin/openapi.json": {
            "get": _op("This document", {"200": _json({"type": "object"}, "OpenAPI 3.1")})
        },
        "/admin/tenants": {
            "get": _op(
                "List tenants (config file first, then the store)",
                {"200": _json(tenants_page, "A page")},
                parameters=_PAGE,
            ),
            "post": _op(
                "Create a tenant in the store",
                {"201": _json(tenant, "Created")},
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["tenant_id"],
                        "additionalProperties": False,
                        "properties": {
                            "tenant_id": {
                                "type": "string",
                                "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                            },
                            "policy": _ref("Policy"),
                        },
                    }
                ),
            ),
        },
        "/admin/tenants/{tenant_id}": {
            "parameters": [_TENANT_ID],
            "get": _op("Read a tenant", {"200": _json(tenant, "The tenant")}),
            "put": _op(
                "Replace a store tenant's policy (version check)",
                {"200": _json(tenant, "Updated")},
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["policy", "version"],
                        "additionalProperties": False,
                        "properties": {"policy": _ref("Policy"), "version": {"type": "integer"}},
                    }
                ),
            ),
            "delete": _op(
                "Delete a store tenant and its keys (version check)",
                {"200": _json({"type": "object"}, "Deleted")},
                parameters=[
                    {
                        "name": "version",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
            ),
        },
        "/admin/tenants/{tenant_id}/keys": {
            "parameters": [_TENANT_ID],
            "get": _op(
                "List a tenant's keys (prefix and metadata, never hashes)",
                {
                    "200": _json(
                        {"type": "object", "properties": {"keys": {"type": "array", "items": key}}},
                        "The keys",
                    )
                },
            ),
            "post": _op(
                "Create a key (shown once)",
                {"201": _json(_ref("NewKey"), "Created")},
                requestBody=_body(
                    {"type": "object", "additionalProperties": False, "properties": key_fields}
                ),
            ),
        },
        "/admin/tenants/{tenant_id}/keys/{key_id}": {
            "parameters": [_TENANT_ID, _KEY_ID],
            "get": _op("Read a key's metadata", {"200": _json(key, "The key")}),
            "patch": _op(
                "Change a key's name, expiry or overrides (version check)",
                {"200": _json(key, "Updated")},
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["version"],
                        "additionalProperties": False,
                        "properties": {**key_fields, "version": {"type": "integer"}},
                    }
                ),
            ),
        },
        "/admin/tenants/{tenant_id}/keys/{key_id}/rotate": {
            "parameters": [_TENANT_ID, _KEY_ID],
            "post": _op(
                "Make a new key; the old one works for grace_s more seconds",
                {"201": _json(_ref("NewKey"), "The new key (shown once), and `old`")},
                requestBody=_body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "grace_s": {"type": "integer", "minimum": 0, "default": 3600},
                            "version": {"type": "integer"},
                            "name": {"type": ["string", "null"]},
                            "expires_at": {"type": ["string", "null"], "format": "date-time"},
                        },
                    }
                ),
            ),
        },
        "/admin/tenants/{tenant_id}/keys/{key_id}/revoke": {
            "parameters": [_TENANT_ID, _KEY_ID],
            "post": _op(
                "Revoke a key now (on every replica within a poll)", {"200": _json(key, "Revoked")}
            ),
        },
        "/admin/usage": {
            "get": _op(
                "Usage of every tenant",
                {"200": _json({"type": "object"}, "A page")},
                parameters=_PAGE,
            )
        },
        "/admin/usage/{tenant_id}": {
            "parameters": [_TENANT_ID],
            "get": _op(
                "One tenant's budgets and usage", {"200": _json({"type": "object"}, "Usage")}
            ),
        },
        "/admin/receipts": {
            "get": _op("Latest receipts", {"200": _json({"type": "object"}, "Receipts")})
        },
        "/admin/verify": {
            "get": _op("The last verification", {"200": _json({"type": "object"}, "Report")}),
            "post": _op("Verify the receipt trail", {"200": _json({"type": "object"}, "Report")}),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Aegis proxy admin API",
            "version": "1",
            "description": "Tenants, policies and virtual keys at run time. Send an admin key as "
            "`Authorization: Bearer <key>`.",
        },
        "security": [{"adminKey": []}],
        "components": {
            "securitySchemes": {"adminKey": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
            "responses": responses,
        },
        "paths": paths,
    }
