"""Bearer tokens: signed (HS256), carrying the user id and an expiry."""
from __future__ import annotations

import hmac
import time

import jwt

from shared.config import Settings, derive


class InvalidToken(Exception):
    """Missing, malformed, badly signed or expired."""


def issue(settings: Settings, user: str, ttl_seconds: int | None = None) -> str:
    now = int(time.time())
    ttl = settings.token_ttl_seconds if ttl_seconds is None else ttl_seconds
    return jwt.encode({"sub": user, "iat": now, "exp": now + ttl}, settings.signing_secret, algorithm="HS256")


# Tokens already verified: (signing secret, token) -> (user, expiry). A client sends the same token with
# every request, and checking its signature and claims again was the largest cost of a submission after
# the stores' round trips. A hit is still refused once its expiry has passed; the table is bounded.
_verified: dict[tuple[str, str], tuple[str, float]] = {}
VERIFIED_KEPT = 4096


def verify(settings: Settings, token: str) -> str:
    """The user id the token was issued to."""
    known = _verified.get((settings.signing_secret, token))
    if known is not None:
        if time.time() < known[1]:
            return known[0]
        raise InvalidToken("Signature has expired")
    try:
        claims = jwt.decode(token, settings.signing_secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    user = claims.get("sub")
    if not isinstance(user, str) or not user:
        raise InvalidToken("token names no user")
    if len(_verified) >= VERIFIED_KEPT:
        _verified.clear()
    _verified[(settings.signing_secret, token)] = (user, float(claims["exp"]))
    return user


INTERNAL_HEADER = "X-Spice-Internal"


def internal_token(settings: Settings) -> str:
    """The credential the project's own processes present to each other's internal pages (the worker's):
    derived from the signing secret they share, never given to users."""
    return derive(settings.signing_secret, "internal pages")


def is_internal(settings: Settings, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(presented, internal_token(settings))
