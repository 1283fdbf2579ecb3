"""Helpers every router shares: JSON in Salesforce's encoding, body parsing, the org and the session."""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import Response

from salesforce_emulator.auth import Session
from salesforce_emulator.errors import SalesforceError, invalid_session, json_parser_error, not_found
from salesforce_emulator.org import Org

JSON_MEDIA_TYPE = "application/json;charset=UTF-8"
_VERSION = re.compile(r"^\d{2,3}\.0$")


class SalesforceJSONResponse(Response):
    media_type = JSON_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return SalesforceJSONResponse(content, status_code=status_code, headers=headers)


def error_response(error: SalesforceError) -> Response:
    return json_response([error.body_item()], error.status)


def get_org(request: Request) -> Org:
    return request.app.state.org


def get_session(request: Request) -> Session:
    session = getattr(request.state, "sf_session", None)
    if session is None:
        raise invalid_session()
    return session


def check_version(version: str) -> str:
    if not _VERSION.match(version):
        raise not_found()
    return version


async def read_json(request: Request) -> Any:
    body = await request.body()
    if not body.strip():
        raise json_parser_error("No content to map due to end-of-input")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise json_parser_error(f"Unexpected character: {error.msg} at [line:{error.lineno}, "
                                f"column:{error.colno}]") from None


async def read_json_object(request: Request) -> dict[str, Any]:
    """Every body the API takes is a JSON object; anything else is a deserialisation error."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise json_parser_error(f"Cannot deserialize instance of object from {type(body).__name__} value "
                                "or request may be missing a required field")
    return body


OrgDep = Annotated[Org, Depends(get_org)]
SessionDep = Annotated[Session, Depends(get_session)]
