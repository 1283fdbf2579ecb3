"""Hostile input refused the same way in every service: ids, paging cursors, integers and text.

Postgres stores neither NUL (U+0000) nor unpaired UTF-16 surrogates (they have no UTF-8 form), ids are
bigints and most counters are 32-bit: a value outside what the column holds must answer 400 naming the
field, never reach SQL and fail there as a 500. Routes parse ids and cursors with `parse_id` /
`parse_after`, models type integers with `Int32` / `Int64`, and `TextGuardMiddleware` (installed by
`crm_common.app.create_service_app`) refuses bad text in paths, query strings and JSON bodies before any
route runs, so a route cannot forget it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from pydantic import Field
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_common.errors import ErrorBody, HubSpotError, error_body
from crm_common.responses import FastJSONResponse

BIGINT_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)

# Integers as the database holds them: pydantic refuses anything else with a 400 naming the field.
Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=-BIGINT_MAX - 1, le=BIGINT_MAX)]

# How much of an offending value an error message repeats (a 1 MB value must not become a 1 MB error).
ECHO_CHARS = 40


def abridged(value: object) -> str:
    """`value` as text short enough to repeat in an error message."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


def echo(value: object) -> str:
    """`value` quoted for an error message, abridged, with control characters and surrogates escaped."""
    return repr(abridged(value))


def as_id(value: object) -> int | None:
    """`value` as a row id when it is one (ASCII digits or an int, 0 to bigint's maximum), else None.

    `str.isdigit()` is not enough: it accepts '²' and other Unicode digits that `int()` refuses.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= BIGINT_MAX else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 19 or not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    return number if number <= BIGINT_MAX else None


def invalid_id(value: object, *, field: str, what: str = "id") -> HubSpotError:
    message = f"{field} must be a valid {what}: a whole number from 0 to {BIGINT_MAX}; got {echo(value)}"
    return HubSpotError(400, message, category="VALIDATION_ERROR",
                        errors=[{"message": message, "code": "INVALID_ID", "in": field}])


def parse_id(value: object, *, field: str, what: str = "id") -> int:
    """An id from a path, a query or a body, or a 400 naming `field`."""
    number = as_id(value)
    if number is None:
        raise invalid_id(value, field=field, what=what)
    return number


def parse_after(value: object, *, field: str = "after") -> int:
    """A paging cursor (`after`): absent or empty is the first page, else an id-sized whole number."""
    if value is None or value == "":
        return 0
    number = as_id(value)
    if number is None:
        message = f"{field} must be the paging cursor a previous page returned (a whole number); got {echo(value)}"
        raise HubSpotError(400, message, category="VALIDATION_ERROR",
                           errors=[{"message": message, "code": "INVALID_PAGING_CURSOR", "in": field}])
    return number


# --- request bodies read by hand ------------------------------------------------------------------------

def declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isascii() and value.isdigit() else None


def capped(request: Request, *, max_bytes: int, too_large: Callable[[], HubSpotError]) -> Request:
    """`request` whose body raises `too_large()` as soon as more than `max_bytes` have arrived.

    For bodies parsed by a library that reads the whole stream (a multipart form spooled to disk): the
    declared length is checked first, and a chunked body is counted as it streams, never read past the
    limit.
    """
    declared = declared_length(request)
    if declared is not None and declared > max_bytes:
        raise too_large()
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise too_large()
        return message

    return Request(request.scope, receive)


async def read_capped(request: Request, *, max_bytes: int, too_large: Callable[[], HubSpotError]) -> bytes:
    """The whole body, refused with `too_large()` before more than `max_bytes` are held in memory."""
    chunks: list[bytes] = []
    async for chunk in capped(request, max_bytes=max_bytes, too_large=too_large).stream():
        chunks.append(chunk)
    return b"".join(chunks)


# --- text ---------------------------------------------------------------------------------------------------

_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def bad_character(text: str) -> str | None:
    """Why `text` cannot be stored, or None: a NUL or an unpaired surrogate."""
    found = _BAD_CHARACTER.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\u0000), which cannot be stored"
    return f"contains an unpaired UTF-16 surrogate (\\u{ord(found.group()):04x}), which is not valid Unicode"


def _walk(value: Any, path: str) -> Iterator[tuple[str, str, bool]]:
    """(path, text, is_key) for every string in a decoded JSON document."""
    if isinstance(value, str):
        yield path, value, False
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield child, key, True
            yield from _walk(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def find_bad_text(document: Any, *, root: str = "") -> tuple[str, str] | None:
    """The first string (key or value) of a decoded JSON document that cannot be stored: (where, why)."""
    for path, text, is_key in _walk(document, root):
        reason = bad_character(text)
        if reason is not None:
            return path or "body", ("names a key that " if is_key else "") + reason
    return None


def printable(text: str) -> str:
    """`text` with its NULs and surrogates written as escapes, so an error can quote it (and be encoded)."""
    return _BAD_CHARACTER.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def bad_text_error(where: str, reason: str) -> HubSpotError:
    where = printable(where)
    message = f"Invalid input: {where} {reason}"
    detail: dict[str, Any] = {"message": message, "code": "INVALID_CHARACTER", "in": where}
    parts = where.split(".")
    if len(parts) >= 2 and parts[-2].rsplit("[", 1)[0] == "properties":
        detail["context"] = {"propertyName": [parts[-1]]}  # HubSpot names the property on property errors
    return HubSpotError(400, message, category="VALIDATION_ERROR", errors=[detail])


def check_text(document: Any, *, root: str = "") -> None:
    """Raise a 400 naming the first string of `document` that cannot be stored (for bodies parsed by hand)."""
    found = find_bad_text(document, root=root)
    if found is not None:
        raise bad_text_error(*found)


# A cheap scan of the raw JSON bytes: a NUL or surrogate can only arrive as a \u escape (raw control
# characters are invalid JSON) or as the UTF-8-style bytes of a surrogate, which Python's json decodes
# with surrogatepass. Only a body that matches is decoded and walked to find the field.
_SUSPECT_JSON = re.compile(rb"\\u0000|\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_JSON_TYPE = re.compile(r"^application/([\w.+-]*\+)?json\b", re.IGNORECASE)


class TextGuardMiddleware:
    """Refuses, before any route runs, text that no service can store: NUL in the path or the query, NUL
    or an unpaired surrogate anywhere in a JSON body; and JSON bodies over `max_json_bytes` (413).

    Multipart and other bodies stream through untouched (their routes check what they parse).
    """

    def __init__(self, app: ASGIApp, *, max_json_bytes: int) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._path_or_query_problem(scope)
        if problem is not None:
            await self._refuse(scope, receive, send, bad_text_error(*problem))
            return
        content_type = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-type"), "")
        if not _JSON_TYPE.match(content_type):
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_json_bytes:
            await self._refuse(scope, receive, send, self._too_large())
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_json_bytes:
                await self._refuse(scope, receive, send, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _SUSPECT_JSON.search(body):
            try:
                document = json.loads(body)  # what the route will see (starlette decodes the same way)
            except ValueError:
                document = None  # the route reports invalid JSON in its own words
            found = find_bad_text(document) if document is not None else None
            if found is not None:
                await self._refuse(scope, receive, send, bad_text_error(*found))
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _path_or_query_problem(scope: Scope) -> tuple[str, str] | None:
        reason = bad_character(scope["path"])
        if reason is not None:
            return "path", reason
        query: bytes = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if (reason := bad_character(key)) is not None:
                    return key, "names a query parameter that " + reason
                if (reason := bad_character(value)) is not None:
                    return key, reason
        return None

    def _too_large(self) -> HubSpotError:
        limit_mb = self.max_json_bytes / (1 << 20)
        return HubSpotError(413, f"The request body is larger than the {limit_mb:g} MB a JSON request may be",
                            category="VALIDATION_ERROR", errors=[{"message": "body too large",
                                                                  "code": "PAYLOAD_TOO_LARGE", "in": "body"}])

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, error: HubSpotError) -> None:
        response = FastJSONResponse(error_body(error.status, error.message, category=error.category,
                                               errors=error.errors), status_code=error.status)
        await response(scope, receive, send)


def document_refusals(app: FastAPI) -> None:
    """Declares in the app's OpenAPI what TextGuardMiddleware may answer on any route: 400 (a NUL in the path
    or the query, unstorable text in the body) and 413 on routes that take JSON."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()  # cached by FastAPI in app.openapi_schema, completed here in place
        reference = {"$ref": "#/components/schemas/ErrorBody"}
        if "ErrorBody" not in document.get("components", {}).get("schemas", {}):
            schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(schema.pop("$defs", {}))
            schemas["ErrorBody"] = schema
        for path_item in document.get("paths", {}).values():
            for operation in path_item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                answers = {"400": "Invalid input"}
                if "application/json" in (operation.get("requestBody") or {}).get("content", {}):
                    answers["413"] = "Payload too large"
                for status, description in answers.items():
                    operation["responses"].setdefault(status, {
                        "description": description, "content": {"application/json": {"schema": reference}}})
        return document

    app.openapi = openapi  # type: ignore[method-assign]
