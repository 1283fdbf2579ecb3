"""Hostile input: ids, cursors and text every service refuses with a 400 naming the field, never a 500."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from crm_common.app import RequestContextMiddleware
from crm_common.errors import HubSpotError, install_error_handlers
from crm_common.inputs import (
    BIGINT_MAX,
    TextGuardMiddleware,
    as_id,
    find_bad_text,
    parse_after,
    parse_id,
    printable,
)
from crm_common.testing import signed_headers
from fastapi import FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize("value", ["0", "42", str(BIGINT_MAX), " 7 ", 7, 0, BIGINT_MAX])
def test_ids_within_bigint_are_ids(value: object) -> None:
    assert as_id(value) == int(str(value).strip())
    assert parse_id(value, field="objectId") == int(str(value).strip())


@pytest.mark.parametrize("value", ["", "-1", "1.5", "abc", "²", "١٢٣", "12²", str(BIGINT_MAX + 1),
                                   "9" * 30, "0x10", "1e3", None, -1, BIGINT_MAX + 1, 2**70, True, 1.0, "\x00"])
def test_anything_else_is_a_400_naming_the_field(value: object) -> None:
    assert as_id(value) is None
    with pytest.raises(HubSpotError) as caught:
        parse_id(value, field="objectId", what="contact id")
    error = caught.value
    assert error.status == 400 and error.category == "VALIDATION_ERROR"
    assert error.errors == [{"message": error.message, "code": "INVALID_ID", "in": "objectId"}]
    assert error.message.startswith("objectId must be a valid contact id")


def test_after_is_a_cursor_or_a_400() -> None:
    assert parse_after(None) == 0 and parse_after("") == 0 and parse_after("15") == 15
    for bad in ("99999999999999999999", "²", "x", "-3"):
        with pytest.raises(HubSpotError) as caught:
            parse_after(bad, field="inputs[2].after")
        assert caught.value.status == 400 and caught.value.errors[0]["in"] == "inputs[2].after"


def test_a_long_value_is_not_repeated_whole_in_the_error() -> None:
    with pytest.raises(HubSpotError) as caught:
        parse_id("9" * 1_000_000, field="objectId")
    assert len(caught.value.message) < 200


@given(st.text())
def test_as_id_never_raises_and_agrees_with_int(text: str) -> None:
    found = as_id(text)
    if found is not None:
        assert str(found) == text.strip().lstrip("0") or found == 0


def test_bad_text_is_found_with_its_path() -> None:
    assert find_bad_text({"a": ["ok", {"b": "fine"}]}) is None
    assert find_bad_text({"properties": {"firstname": "a\x00b"}}) == (
        "properties.firstname", "contains a NUL character (\\u0000), which cannot be stored")
    where, why = find_bad_text({"inputs": [{"id": "1"}, {"id": "x\ud800"}]})  # type: ignore[misc]
    assert where == "inputs[1].id" and "surrogate" in why
    where, why = find_bad_text({"properties": {"first\x00name": "x"}})  # type: ignore[misc]
    assert printable(where) == "properties.first\\u0000name" and why.startswith("names a key")
    # A valid surrogate pair decodes to one astral character: nothing wrong with it.
    assert find_bad_text(json.loads('{"emoji": "\\ud83d\\ude00"}')) is None


# --- the middleware in a real app ----------------------------------------------------------------------------

def guarded_app(max_json_bytes: int = 1 << 20) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(TextGuardMiddleware, max_json_bytes=max_json_bytes)

    @app.post("/things/{thing_id}")
    async def create(thing_id: str, request: Request) -> dict[str, object]:
        return {"id": thing_id, "body": await request.json(), "query": dict(request.query_params)}

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return app


async def call(app: FastAPI, method: str, url: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        return await client.request(method, url, **kwargs)  # type: ignore[arg-type]


def assert_refused(response: httpx.Response, where: str, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["correlationId"]
    assert body["errors"][0]["in"] == where, body
    return body


@pytest.mark.parametrize(("raw", "where"), [
    (b'{"properties": {"firstname": "a\\u0000b"}}', "properties.firstname"),
    (b'{"properties": {"firstname": "a\\ud800b"}}', "properties.firstname"),
    (b'{"properties": {"firstname": "a\\uDFFFb"}}', "properties.firstname"),
    (b'{"properties": {"firstname": "a\xed\xa0\x80b"}}', "properties.firstname"),  # a surrogate's UTF-8 form
    (b'{"inputs": [{"id": "1"}, {"id": "\\u0000"}]}', "inputs[1].id"),
    (b'{"label\\u0000": "x"}', "label\\u0000"),
    (b'["ok", "\\ud83d"]', "[1]"),
])
async def test_json_bodies_with_unstorable_text_are_refused_naming_the_field(raw: bytes, where: str) -> None:
    body = assert_refused(await call(guarded_app(), "POST", "/things/1", content=raw,
                                     headers={"content-type": "application/json"}), where)
    if where.startswith("properties."):
        assert body["errors"][0]["context"] == {"propertyName": [where.split(".", 1)[1]]}


async def test_escaped_backslashes_and_valid_pairs_pass_through() -> None:
    raw = b'{"a": "C:\\\\u0000 is a path", "b": "\\ud83d\\ude00", "c": "\\u00e9t\\u00e9"}'
    response = await call(guarded_app(), "POST", "/things/1", content=raw,
                          headers={"content-type": "application/json; charset=utf-8"})
    assert response.status_code == 200, response.text
    assert response.json()["body"] == {"a": "C:\\u0000 is a path", "b": "\U0001f600", "c": "été"}


async def test_nul_in_the_path_or_the_query_is_refused() -> None:
    app = guarded_app()
    assert_refused(await call(app, "POST", "/things/a%00b", json={}), "path")
    assert_refused(await call(app, "POST", "/things/1?properties=a%00b", json={}), "properties")
    assert (await call(app, "POST", "/things/1?q=caf%C3%A9", json={})).status_code == 200


async def test_json_bodies_over_the_limit_are_413_and_other_bodies_stream_untouched() -> None:
    app = guarded_app(max_json_bytes=1000)
    big = json.dumps({"value": "x" * 2000})
    assert_refused(await call(app, "POST", "/things/1", content=big, headers={"content-type": "application/json"}),
                   "body", 413)

    async def chunks():  # no content-length: counted while it arrives
        for _ in range(5):
            yield b'{"v": "' + b"x" * 300 + b'"}'

    assert_refused(await call(app, "POST", "/things/1", content=chunks(),
                              headers={"content-type": "application/json"}), "body", 413)
    upload = await call(app, "POST", "/upload", content=b"\x00" * 5000, headers={"content-type": "text/csv"})
    assert upload.json() == {"bytes": 5000}


# --- a 500 does not close the connection --------------------------------------------------------------------

def test_an_unexpected_error_answers_500_and_keeps_the_connection_open() -> None:
    """Starlette's own 500 path re-raises, and uvicorn then closes the connection; a proxy that pooled it
    hands it to the next request. The next request on the same connection must be served."""
    app = FastAPI()
    install_error_handlers(app)
    connections: set[tuple[str, int]] = set()

    @app.get("/boom")
    async def boom(request: Request) -> None:
        connections.add(request.client)  # type: ignore[arg-type]
        raise RuntimeError("a bug")

    @app.get("/fine")
    async def fine(request: Request) -> dict[str, bool]:
        connections.add(request.client)  # type: ignore[arg-type]
        return {"ok": True}

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                          limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) as client:
            for _ in range(5):
                failed = client.get("/boom")
                assert failed.status_code == 500 and failed.json()["category"] == "INTERNAL_ERROR"
                assert "close" not in failed.headers.get("connection", "")
                assert client.get("/fine").status_code == 200
        assert len(connections) == 1, "every request went over the one kept-alive connection"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def test_a_request_without_auth_is_refused_before_its_body_is_read() -> None:
    app = guarded_app()
    app.add_middleware(RequestContextMiddleware, secret="s")
    response = await call(app, "POST", "/things/1", content=b'{"a": "\\u0000"}',
                          headers={"content-type": "application/json"})
    assert response.status_code == 401
    signed = await call(app, "POST", "/things/1/", json={"a": "b"}, headers=signed_headers(1, secret="s"))
    assert signed.status_code == 200 and signed.json()["id"] == "1", "a trailing slash is served, not redirected"
