"""The OpenAPI 3.1 document, generated from the endpoint table and the models."""

from __future__ import annotations

from typing import Any

import msgspec

from ._endpoints import ENDPOINTS, PATH_PARAM_TYPES, AnyEndpoint
from ._errors import STATUS_OF, ErrorBody
from ._events import Event
from ._limits import LOGIN_PATTERN, MAX_INT, MAX_LOGIN, MAX_REACTION, REACTION_PATTERN

LAST_EVENT_ID_PATTERN = r"^[0-9]{1,18}$"
"""What the ``Last-Event-ID`` header may hold: an event id (the server checks the same)."""

_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "login": {"type": "string", "pattern": LOGIN_PATTERN, "maxLength": MAX_LOGIN},
    "file_id": {"type": "string", "minLength": 1, "maxLength": 256},
    "emoji": {"type": "string", "pattern": REACTION_PATTERN, "maxLength": MAX_REACTION},
    "key": {"type": "string", "minLength": 1, "maxLength": 256},
}

_SSE_DESCRIPTION = (
    "An endless text/event-stream (SSE). Each durable event is one frame of an `id:` line "
    "(its event id, to resume with Last-Event-ID), an `event:` line (its kind) and a `data:` "
    "line holding the event as JSON (the Event schema); presence frames have no id, and "
    "`:` comment lines are heartbeats."
)


def _path_schema(name: str) -> dict[str, Any]:
    if PATH_PARAM_TYPES[name] is int:
        return {"type": "integer", "minimum": 1, "maximum": MAX_INT}
    return dict(_PATH_SCHEMAS.get(name, {"type": "string", "minLength": 1, "maxLength": 256}))


_REF = "#/components/schemas/{name}"


def _ref(kind: type) -> dict[str, str]:
    return {"$ref": _REF.format(name=kind.__name__)}


def _query_parameters(kind: type, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    schema = schemas.get(kind.__name__, {})
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
        for name, prop in schema.get("properties", {}).items()
    ]


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query value is a string or absent, never JSON null: ``int | None`` is an integer."""
    options = prop.get("anyOf")
    if options is None:
        return prop
    kept = [o for o in options if o != {"type": "null"}]
    rest = {k: v for k, v in prop.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}


def _operation(ep: AnyEndpoint, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": ep.name, "summary": ep.summary, "tags": [ep.tag]}
    params: list[dict[str, Any]] = [
        {
            "name": p,
            "in": "path",
            "required": True,
            "schema": _path_schema(p),
        }
        for p in ep.params
    ]
    if ep.query is not None:
        params += _query_parameters(ep.query, schemas)
    if ep.name == "events":
        params.append(
            {"name": "Last-Event-ID", "in": "header", "required": False,
             "description": "Resume after this event id (wins over last_event_id)",
             "schema": {"type": "string", "pattern": LAST_EVENT_ID_PATTERN}}
        )  # fmt: skip
    if params:
        op["parameters"] = params
    if ep.request is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(ep.request)}},
        }
    elif ep.body == "raw":
        op["requestBody"] = {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                "format": "binary"}}},
        }  # fmt: skip
    if ep.response is not None:
        ok: dict[str, Any] = {
            "description": "OK",
            "content": {"application/json": {"schema": _ref(ep.response)}},
        }
    elif ep.name == "events":
        ok = {
            "description": _SSE_DESCRIPTION,
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string", "description": "SSE frames: id, event, data"},
                    "x-sse-data": _ref_name("Event"),
                }
            },
        }
    else:
        ok = {"description": "The bytes", "content": {"*/*": {}}}
    error = {"description": "Error", "content": {"application/json": {"schema": _ref(ErrorBody)}}}
    op["responses"] = {"200": ok, "4XX": error, "5XX": error}
    if ep.auth:
        op["security"] = [{"bearer": []}]
    return op


def _ref_name(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def openapi_document(version: str = "0.1.0") -> dict[str, Any]:
    """The whole API as an OpenAPI 3.1 document (a JSON-ready dict)."""
    kinds: list[Any] = [ErrorBody]
    for ep in ENDPOINTS:
        kinds += [k for k in (ep.request, ep.response, ep.query) if k is not None]
    kinds.append(Event)
    unique = list(dict.fromkeys(kinds))
    refs, schemas = msgspec.json.schema_components(unique, ref_template=_REF)
    schemas["Event"] = refs[unique.index(Event)]
    paths: dict[str, dict[str, Any]] = {}
    for ep in ENDPOINTS:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "messenger",
            "version": version,
            "description": "Self-hosted team messenger. Errors: "
            + ", ".join(f"{c.value} ({s})" for c, s in STATUS_OF.items()),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
