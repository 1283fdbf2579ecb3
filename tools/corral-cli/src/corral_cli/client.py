"""Calls to Corral's public API through the gateway, each failure turned into one clear sentence."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"


class CorralError(Exception):
    """Anything that stops a command: the message is what the user reads, the command exits non-zero."""


class Api:
    def __init__(self, url: str | None, token: str | None, *, timeout: float = 60.0) -> None:
        self.url = (url or os.environ.get("CORRAL_URL") or DEFAULT_URL).rstrip("/")
        token = token or os.environ.get("CORRAL_TOKEN")
        if not token:
            raise CorralError(
                "no access token: set CORRAL_TOKEN (create one with `corral token create ACCOUNT`) "
                "or pass --token"
            )
        self._client = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(timeout, connect=10.0),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "corral-cli"},
        )

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise CorralError(f"cannot reach Corral at {self.url} (is it running? set CORRAL_URL)") from None
        except httpx.TimeoutException:
            raise CorralError(f"Corral at {self.url} did not answer {method} {path} in time") from None
        except httpx.HTTPError as exc:
            raise CorralError(f"{method} {path} failed: {exc}") from None
        if response.status_code >= 400:
            raise CorralError(describe_failure(method, path, response))
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise CorralError(
                f"{method} {path} answered something that is not JSON: {response.text[:200]!r}"
            ) from None

    def download(self, path: str, dest: Path) -> int:
        """Streams a file to `dest`; the number of bytes written."""
        written = 0
        try:
            with self._client.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise CorralError(describe_failure("GET", path, response))
                with dest.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        written += len(chunk)
        except httpx.ConnectError:
            raise CorralError(f"cannot reach Corral at {self.url}") from None
        except OSError as exc:
            raise CorralError(f"cannot write {dest}: {exc.strerror}") from None
        return written


def describe_failure(method: str, path: str, response: httpx.Response) -> str:
    """HubSpot's error body says what went wrong and names the request (correlationId) for the operators."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        details = "; ".join(
            str(e.get("message"))
            for e in body.get("errors") or []
            if isinstance(e, dict) and e.get("message") and e.get("message") != body["message"]
        )
        text = f"{body['message']}" + (f" ({details})" if details else "")
        correlation = body.get("correlationId")
    else:
        text = response.text.strip()[:300] or response.reason_phrase
        correlation = response.headers.get("x-request-id")
    hint = {
        401: " - check CORRAL_TOKEN",
        403: " - the token lacks a scope this needs",
        404: "",
        429: " - rate limited, retry later",
    }.get(response.status_code, "")
    where = f"{method} {path}"
    return f"{where}: HTTP {response.status_code}: {text}{hint}" + (
        f" [correlationId {correlation}]" if correlation else ""
    )
