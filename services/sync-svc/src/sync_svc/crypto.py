"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with keys from the environment, rotated with MultiFernet.

`SYNC_SVC_ENCRYPTION_KEY` holds one key or several separated by commas: the first encrypts, every one
decrypts, so a new key is rolled out by putting it first and keeping the old one until
`sync-svc-rotate-keys` (or the next token refresh) has re-encrypted every row. A key is 32 random
bytes in URL-safe base64 (`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class EncryptionUnavailable(RuntimeError):
    """No key is configured (or a stored secret was sealed with a key that is no longer configured)."""


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise EncryptionUnavailable("no encryption key is configured")
        try:
            self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
        except ValueError as exc:
            raise EncryptionUnavailable(f"an encryption key is not a valid Fernet key ({exc})") from None

    @classmethod
    def from_settings(cls, key_list: str | None, key_file: Path | None) -> SecretBox | None:
        keys = [k for k in (key_list or "").split(",") if k.strip()]
        if not keys and key_file is not None and key_file.exists():
            keys = [k for k in key_file.read_text().replace("\n", ",").split(",") if k.strip()]
        return cls(keys) if keys else None

    def seal(self, value: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(orjson.dumps(value))

    def open(self, token: bytes) -> dict[str, Any]:
        try:
            return orjson.loads(self._fernet.decrypt(bytes(token)))
        except InvalidToken:
            raise EncryptionUnavailable("a stored secret cannot be decrypted with the configured keys; "
                                        "the connection must be made again") from None

    def rotate(self, token: bytes) -> bytes:
        """The same secret sealed with the first (newest) key."""
        try:
            return self._fernet.rotate(bytes(token))
        except InvalidToken:
            raise EncryptionUnavailable("a stored secret cannot be decrypted with the configured keys") from None


def generate_key() -> str:
    return Fernet.generate_key().decode()
