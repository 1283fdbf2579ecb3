"""The signed `state` of the authorization-code flow (pure): it carries the account, where Salesforce sends
the person back, and which connected app and login host the code belongs to, so the callback needs no
server-side session and a state made for one account cannot finish another's connection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson


class InvalidState(ValueError):
    pass


@dataclass(frozen=True)
class AuthorizationState:
    account_id: int
    redirect_uri: str
    login_url: str
    client_id: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(secret: str) -> bytes:
    # A key of its own, so a state can never pass for another signed value made with the same secret.
    return hmac.new(secret.encode(), b"corral-sync-oauth-state", hashlib.sha256).digest()


def sign_state(state: AuthorizationState, secret: str) -> str:
    payload = _b64(orjson.dumps({"a": state.account_id, "r": state.redirect_uri, "l": state.login_url,
                                 "c": state.client_id, "e": state.expires_at, "n": secrets.token_urlsafe(12)}))
    signature = _b64(hmac.new(_key(secret), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def verify_state(token: str, secret: str, *, now: float | None = None) -> AuthorizationState:
    payload, _, signature = token.partition(".")
    expected = _b64(hmac.new(_key(secret), payload.encode(), hashlib.sha256).digest())
    if not payload or not hmac.compare_digest(expected, signature):
        raise InvalidState("the state was not issued by this service (signature mismatch)")
    try:
        data = orjson.loads(_unb64(payload))
        state = AuthorizationState(int(data["a"]), str(data["r"]), str(data["l"]), str(data["c"]), int(data["e"]))
    except (ValueError, KeyError, TypeError):
        raise InvalidState("the state is malformed") from None
    if (time.time() if now is None else now) > state.expires_at:
        raise InvalidState("the state has expired; start the authorization again")
    return state
