"""Authentication: the OAuth2 token endpoint (v1), Bearer tokens, and Basic key pairs (v2).

Tokens are JWT-shaped and signed with HMAC-SHA256 by a key kept in the journal, so they are
checked without server-side token storage, stay valid across restarts on the same journal,
and are accepted by every worker process. Their expiry is measured on the mock's clock.
Secrets are compared with :func:`hmac.compare_digest` so timing reveals nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from . import faults
from .clock import iso
from .errors import OAuthError, Unauthorized
from .journal import Journal
from .settings import Credential

bp = Blueprint("auth", __name__)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class TokenClaims:
    sub: str
    iat: int
    exp: int
    jti: str


class TokenIssuer:
    """Mints and verifies the mock's access tokens."""

    def __init__(
        self, key: bytes, apps: tuple[Credential, ...], ttl: int, journal: Journal
    ) -> None:
        self._key = key
        self._apps = {app.ident: app for app in apps}
        self.ttl = ttl
        self._journal = journal

    def revoke(self, token: str, now: float) -> None:
        """Expire one token now (the ``expireToken`` fault), whatever its ``exp`` says."""
        claims = self._claims(token)
        if claims is not None:
            self._journal.set_state(f"revoked:{claims.get('jti')}", str(now))

    @staticmethod
    def _claims(token: str) -> dict[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            payload = json.loads(_unb64url(parts[1]))
        except (ValueError, binascii.Error):
            return None
        return payload if isinstance(payload, dict) else None

    def _sign(self, signing_input: str) -> str:
        return _b64url(hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest())

    def mint(self, app_id: str, now: float) -> tuple[str, TokenClaims]:
        claims = TokenClaims(app_id, int(now), int(now) + self.ttl, uuid.uuid4().hex)
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rokt-mock"}).encode())
        payload = _b64url(
            json.dumps(
                {
                    "sub": claims.sub,
                    "iat": claims.iat,
                    "exp": claims.exp,
                    "jti": claims.jti,
                    "iss": "rokt-mock",
                    "token_use": "access",
                },
                separators=(",", ":"),
            ).encode()
        )
        signing_input = f"{header}.{payload}"
        return f"{signing_input}.{self._sign(signing_input)}", claims

    def verify(self, token: str, now: float) -> Credential:
        """The app a valid token belongs to, or :class:`Unauthorized` saying what is wrong."""
        parts = token.split(".")
        if len(parts) != 3:
            raise _bearer_error("the Bearer token is not a token issued by /auth/oauth2/token")
        if not hmac.compare_digest(self._sign(f"{parts[0]}.{parts[1]}"), parts[2]):
            raise _bearer_error("the Bearer token's signature does not verify")
        try:
            payload = json.loads(_unb64url(parts[1]))
            sub, exp = str(payload["sub"]), int(payload["exp"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise _bearer_error("the Bearer token is malformed") from None
        app = self._apps.get(sub)
        if app is None:
            raise _bearer_error(f"the token's app {sub!r} is no longer configured")
        revoked = self._journal.get_state(f"revoked:{payload.get('jti')}")
        if revoked is not None:
            raise _bearer_error(
                f"the access token was expired at {iso(float(revoked))} by a fault",
                expired=True,
            )
        if now >= exp:
            raise _bearer_error(
                f"the access token expired at {iso(exp)} (mock clock: {iso(now)})",
                error="invalid_token",
                expired=True,
            )
        return app


def _bearer_error(
    message: str, error: str = "invalid_token", expired: bool = False
) -> Unauthorized:
    challenge = f'Bearer realm="rokt-mock", error="{error}"'
    return Unauthorized(
        message,
        headers={"WWW-Authenticate": challenge},
        extra={"tokenExpired": True} if expired else None,
    )


def claimed_identity(header: str | None) -> str | None:
    """Who a request says it is, unverified: rules may match on it before auth is checked."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        claims = TokenIssuer._claims(value.strip())
        sub = claims.get("sub") if claims else None
        return sub if isinstance(sub, str) else None
    pair = parse_basic(header)
    return pair[0] if pair else None


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic`` header, or ``None``."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


def check_secret(creds: dict[str, Credential], ident: str, secret: str) -> Credential | None:
    """The credential named ``ident`` if ``secret`` matches it, compared in constant time."""
    cred = creds.get(ident)
    expected = cred.secret if cred is not None else secrets.token_hex(16)
    ok = hmac.compare_digest(expected.encode("utf-8"), secret.encode("utf-8"))
    return cred if ok and cred is not None else None


def authenticate_bearer(issuer: TokenIssuer, header: str | None, now: float) -> Credential:
    if not header:
        raise _bearer_error("the Authorization header is missing; send 'Bearer <access_token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _bearer_error(
            f"expected 'Authorization: Bearer <access_token>', got scheme {scheme!r}"
        )
    return issuer.verify(token.strip(), now)


def authenticate_key_pair(keys: dict[str, Credential], header: str | None) -> Credential:
    challenge = {"WWW-Authenticate": 'Basic realm="rokt-mock"'}
    if not header:
        raise Unauthorized(
            "the Authorization header is missing; send Basic base64(rpub:rsec)", headers=challenge
        )
    pair = parse_basic(header)
    if pair is None:
        raise Unauthorized(
            "expected 'Authorization: Basic base64(rpub-...:rsec-...)'", headers=challenge
        )
    cred = check_secret(keys, pair[0], pair[1])
    if cred is None:
        raise Unauthorized("unknown public key or wrong secret key", headers=challenge)
    return cred


# -- the token endpoint ---------------------------------------------------------------------


def _journaled_ident(services: Any, ident: str) -> str:
    """The claimed app id as the journal may keep it. A sender that swaps id and secret puts
    its secret where the id goes: a known id is kept, a configured secret never is."""
    if ident in services.apps:
        return ident
    for cred in (*services.apps.values(), *services.keys.values()):
        if hmac.compare_digest(cred.secret.encode("utf-8"), ident.encode("utf-8")):
            return "<redacted>"
    return ident[:128]


def _oauth(status: int, error: str, description: str, **headers: str) -> OAuthError:
    return OAuthError(status, error, description, dict(headers))


@bp.post("/auth/oauth2/token")
def token(namespace: str = "default") -> Any:
    """RFC 6749 client-credentials grant, checked in this order: content type, grant_type
    present, client authentication, grant_type value (so each single mistake gets its own
    answer, and a request with several gets the most basic one)."""
    services = current_app.extensions["rokt_mock"]
    g.outcome.update(api_version="v1")
    g.now = now = services.clock.now(namespace)
    selection = faults.before(
        faults.Facts(
            namespace, "token", "v1", claimed_identity(request.headers.get("Authorization")), now
        ),
        services,
        oauth=True,
    )
    mimetype = (request.mimetype or "").lower()
    if mimetype != "application/x-www-form-urlencoded":
        raise _oauth(
            400,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded, "
            f"got {request.content_type or 'none'!r}",
        )
    try:
        form = request.form
        grant = form.get("grant_type")
    except Exception:  # a form werkzeug cannot parse (bad encoding, too large)
        raise _oauth(400, "invalid_request", "the form body cannot be parsed") from None
    if not grant:
        raise _oauth(400, "invalid_request", "grant_type is missing; send client_credentials")
    pair = parse_basic(request.headers.get("Authorization"))
    if pair is None:
        hint = (
            " (client_id/client_secret in the body are not accepted: use the Authorization header)"
            if "client_id" in form or "client_secret" in form
            else ""
        )
        raise _oauth(
            401,
            "invalid_client",
            "client authentication failed: send Authorization: Basic base64(app_id:app_secret)"
            + hint,
            **{"WWW-Authenticate": 'Basic realm="rokt-mock"'},
        )
    g.outcome["credential"] = _journaled_ident(services, pair[0])
    app = check_secret(services.apps, pair[0], pair[1])
    if app is None:
        raise _oauth(
            401,
            "invalid_client",
            "unknown app id or wrong app secret",
            **{"WWW-Authenticate": 'Basic realm="rokt-mock"'},
        )
    if grant != "client_credentials":
        raise _oauth(
            400, "unsupported_grant_type", f"grant_type {grant!r} is not client_credentials"
        )
    access_token, _claims = services.tokens.mint(app.ident, now)
    g.outcome.update(status=200, response_redacted={"access_token": "<redacted>"})
    response = jsonify(
        {"access_token": access_token, "expires_in": services.tokens.ttl, "token_type": "Bearer"}
    )
    response.headers["Cache-Control"] = "no-store"
    faults.after_answer(selection)
    return faults.finish(response, oauth=True)
