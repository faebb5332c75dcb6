"""Bearer tokens: signed (HS256), carrying the user id and an expiry."""
from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

import jwt

from shared.config import Settings


class InvalidToken(Exception):
    """Missing, malformed, badly signed or expired."""


def signing_secret(settings: Settings) -> str:
    """SPICE_SECRET if set, else the secret in home/secret, created on first use (mode 0600)."""
    if settings.secret:
        return settings.secret
    return _secret_file(settings.home)


@functools.cache
def _secret_file(home: Path) -> str:
    """Read once per process (every request verifies a token with it)."""
    path = home / "secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def issue(settings: Settings, user: str, ttl_seconds: int | None = None) -> str:
    now = int(time.time())
    ttl = settings.token_ttl_seconds if ttl_seconds is None else ttl_seconds
    return jwt.encode({"sub": user, "iat": now, "exp": now + ttl}, signing_secret(settings), algorithm="HS256")


def verify(settings: Settings, token: str) -> str:
    """The user id the token was issued to."""
    try:
        claims = jwt.decode(token, signing_secret(settings), algorithms=["HS256"], options={"require": ["sub", "exp"]})
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    user = claims.get("sub")
    if not isinstance(user, str) or not user:
        raise InvalidToken("token names no user")
    return user


INTERNAL_HEADER = "X-Spice-Internal"


def internal_token(settings: Settings) -> str:
    """The credential the project's own processes present to each other's internal pages (the worker's):
    derived from the signing secret they share, never given to users."""
    return hmac.new(signing_secret(settings).encode(), b"spice internal pages v1", hashlib.sha256).hexdigest()


def is_internal(settings: Settings, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(presented, internal_token(settings))
