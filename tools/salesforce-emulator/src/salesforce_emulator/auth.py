"""The connected app: OAuth 2.0 flows, issued sessions and their expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from salesforce_emulator.clock import EmulatorClock
from salesforce_emulator.errors import OAuthError
from salesforce_emulator.settings import EmulatorSettings

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
AUTH_CODE_TTL = timedelta(minutes=15)


@dataclass
class Session:
    access_token: str
    client_id: str
    user_id: str
    issued_at: datetime
    expires_at: datetime


@dataclass
class PendingCode:
    client_id: str
    redirect_uri: str
    user_id: str
    expires_at: datetime


def load_public_key(pem: bytes) -> Any:
    """Accept a PEM certificate (what Salesforce's connected app stores) or a bare public key."""
    if b"BEGIN CERTIFICATE" in pem:
        return x509.load_pem_x509_certificate(pem).public_key()
    return serialization.load_pem_public_key(pem)


class ConnectedApp:
    def __init__(self, settings: EmulatorSettings, clock: EmulatorClock) -> None:
        self.settings = settings
        self.clock = clock
        self.client_id = settings.client_id
        self.client_secret = settings.client_secret
        self.token_ttl = timedelta(seconds=settings.token_ttl_seconds)
        self._lock = threading.Lock()
        self.jwt_keys: list[Any] = []
        if settings.jwt_public_key_path:
            self.jwt_keys.append(load_public_key(settings.jwt_public_key_path.read_bytes()))
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.sessions: dict[str, Session] = {}
            self.refresh_tokens: dict[str, tuple[str, str]] = {}
            self.codes: dict[str, PendingCode] = {}

    # -- sessions ------------------------------------------------------------------------------------------
    def session_for(self, access_token: str) -> Session | None:
        session = self.sessions.get(access_token)
        if session is None or session.expires_at <= self.clock.now():
            return None
        return session

    def expire_all(self) -> None:
        with self._lock:
            now = self.clock.now()
            for session in self.sessions.values():
                session.expires_at = now

    def _issue(self, client_id: str, user_id: str, instance_url: str, org_id: str, *,
               with_refresh_token: bool) -> dict[str, Any]:
        now = self.clock.now()
        access_token = f"{org_id[:15]}!{secrets.token_urlsafe(72)}"
        with self._lock:
            self.sessions[access_token] = Session(access_token, client_id, user_id, now, now + self.token_ttl)
        issued_at = str(int(now.timestamp() * 1000))
        identity = f"https://login.salesforce.com/id/{org_id}/{user_id}"
        signature = base64.b64encode(hmac.new(self.client_secret.encode(), (identity + issued_at).encode(),
                                              hashlib.sha256).digest()).decode()
        body: dict[str, Any] = {
            "access_token": access_token, "signature": signature, "scope": "api refresh_token" if
            with_refresh_token else "api", "instance_url": instance_url, "id": identity, "token_type": "Bearer",
            "issued_at": issued_at,
        }
        if with_refresh_token:
            refresh_token = f"5Aep{secrets.token_urlsafe(60)}"
            with self._lock:
                self.refresh_tokens[refresh_token] = (client_id, user_id)
            body["refresh_token"] = refresh_token
        return body

    # -- flows ---------------------------------------------------------------------------------------------
    def check_client(self, client_id: str | None, client_secret: str | None, *, secret_required: bool = True) -> None:
        if client_id != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if secret_required and client_secret != self.client_secret:
            raise OAuthError("invalid_client", "invalid client credentials")

    def client_credentials(self, client_id: str | None, client_secret: str | None, *, run_as: str,
                           instance_url: str, org_id: str) -> dict[str, Any]:
        self.check_client(client_id, client_secret)
        return self._issue(self.client_id, run_as, instance_url, org_id, with_refresh_token=False)

    def refresh(self, refresh_token: str | None, client_id: str | None, client_secret: str | None, *,
                instance_url: str, org_id: str) -> dict[str, Any]:
        self.check_client(client_id, client_secret, secret_required=client_secret is not None)
        grant = self.refresh_tokens.get(refresh_token or "")
        if grant is None:
            raise OAuthError("invalid_grant", "expired access/refresh token")
        body = self._issue(grant[0], grant[1], instance_url, org_id, with_refresh_token=False)
        return body

    def issue_code(self, client_id: str | None, redirect_uri: str | None, user_id: str) -> str:
        self.check_client(client_id, None, secret_required=False)
        if not redirect_uri:
            raise OAuthError("redirect_uri_mismatch", "redirect_uri must match configuration")
        code = f"aPrx{secrets.token_urlsafe(40)}"
        with self._lock:
            self.codes[code] = PendingCode(self.client_id, redirect_uri, user_id, self.clock.now() + AUTH_CODE_TTL)
        return code

    def exchange_code(self, code: str | None, redirect_uri: str | None, client_id: str | None,
                      client_secret: str | None, *, instance_url: str, org_id: str) -> dict[str, Any]:
        self.check_client(client_id, client_secret)
        with self._lock:
            pending = self.codes.pop(code or "", None)
        if pending is None or pending.expires_at <= self.clock.now():
            raise OAuthError("invalid_grant", "invalid authorization code")
        if pending.redirect_uri != redirect_uri:
            raise OAuthError("redirect_uri_mismatch", "redirect_uri must match configuration")
        return self._issue(pending.client_id, pending.user_id, instance_url, org_id, with_refresh_token=True)

    def jwt_bearer(self, assertion: str | None, *, user_id_for: Any, instance_url: str,
                   org_id: str) -> dict[str, Any]:
        if not assertion:
            raise OAuthError("invalid_request", "assertion is required")
        if not self.jwt_keys:
            raise OAuthError("invalid_grant", "invalid assertion")
        claims = None
        for key in self.jwt_keys:
            try:
                claims = jwt.decode(assertion, key, algorithms=["RS256"], options={
                    "require": ["iss", "sub", "aud", "exp"], "verify_aud": False})
                break
            except jwt.ExpiredSignatureError:
                raise OAuthError("invalid_grant", "expired authorization code") from None
            except jwt.PyJWTError:
                continue
        if claims is None:
            raise OAuthError("invalid_grant", "invalid assertion")
        if not _audience_accepted(claims["aud"], instance_url):
            raise OAuthError("invalid_grant", "audience is invalid")
        if claims["iss"] != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        user_id = user_id_for(claims["sub"])
        if user_id is None:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        return self._issue(self.client_id, user_id, instance_url, org_id, with_refresh_token=False)


def _audience_accepted(audience: Any, instance_url: str) -> bool:
    """Salesforce wants its login host as `aud`; the emulator also takes its own URL (or a URL under it),
    which is what a client pointed at the emulator puts there."""
    audiences = audience if isinstance(audience, list) else [audience]
    return any(isinstance(value, str) and (value in JWT_AUDIENCES or value == instance_url
                                           or value.startswith(instance_url + "/"))
               for value in audiences)
