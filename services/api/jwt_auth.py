"""Bearer tokens that are JWTs from an identity provider (API_AUTH=jwt), verified with PyJWT:
the signature against the provider's keys (a JWKS file, read again when it changes, or URL,
cached), the issuer, the audience, the expiry and not-before (30 s leeway), and an asymmetric
algorithm only (never `none`, never an HMAC a public key could be abused as the secret of).

The caller's name is a claim (`sub` by default); its role comes from another claim (`roles`
by default: a list, or a space-separated string as OAuth scopes are), whose values map to the
roles: any of the operate values gives operate, else any of the read values gives read. A
valid token that maps to neither is refused with 403.
"""

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from services.api.auth import Identity, NoRole, Rejected, Role

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
LEEWAY_SECONDS = 30
RELOAD_CHECK_SECONDS = 1.0


class JwtRejected(Rejected):
    """Why a JWT is not accepted, in words that never repeat the token."""


@dataclass(frozen=True)
class JwtSettings:
    issuer: str
    audience: str
    jwks_file: Path | None = None
    jwks_url: str | None = None
    name_claim: str = "sub"
    role_claim: str = "roles"
    read_values: frozenset[str] = frozenset({"read"})
    operate_values: frozenset[str] = frozenset({"operate"})


class JwtVerifier:
    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client: jwt.PyJWKClient | None = None
        self._keys: jwt.PyJWKSet | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._next_check = 0.0
        if settings.jwks_url is not None:
            self._client = jwt.PyJWKClient(
                settings.jwks_url, cache_keys=True, lifespan=300, timeout=5
            )
        else:
            assert settings.jwks_file is not None
            self._keys = self._read_file(settings.jwks_file)  # ValueError when unusable
            self._stamp = _stamp(settings.jwks_file)

    @staticmethod
    def looks_like_one(token: str) -> bool:
        return token.count(".") == 2

    def identify(self, token: str) -> Identity:
        """The caller; JwtRejected when the token is not valid, NoRole when it maps to none."""
        settings = self._settings
        try:
            key = self._key(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise JwtRejected("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise JwtRejected("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise JwtRejected("the token is from another issuer") from None
        except jwt.ImmatureSignatureError:
            raise JwtRejected("the token is not valid yet") from None
        except (jwt.PyJWTError, ValueError) as exc:
            raise JwtRejected(f"the token is not valid ({type(exc).__name__})") from None
        name = claims.get(settings.name_claim)
        if not isinstance(name, str) or not name:
            raise JwtRejected(f"the token has no {settings.name_claim} claim naming its holder")
        held = claims.get(settings.role_claim, [])
        values = set(
            held.split() if isinstance(held, str) else held if isinstance(held, list) else []
        )
        if values & settings.operate_values:
            return Identity(name, Role.OPERATE)
        if values & settings.read_values:
            return Identity(name, Role.READ)
        raise NoRole(name)

    def _key(self, token: str) -> Any:
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in ALGORITHMS:
            raise JwtRejected(f"the token's algorithm {header.get('alg')!r} is not accepted")
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        keys = self._current_keys()
        kid = header.get("kid")
        matching = [k for k in keys.keys if kid is None or k.key_id == kid]
        if not matching:
            raise JwtRejected("the token is signed with a key the API does not know")
        return matching[0].key

    def _current_keys(self) -> jwt.PyJWKSet:
        path = self._settings.jwks_file
        assert path is not None and self._keys is not None
        now = time.monotonic()
        if now >= self._next_check:
            with self._lock:
                self._next_check = now + RELOAD_CHECK_SECONDS
                stamp = _stamp(path)
                if stamp != self._stamp:
                    self._stamp = stamp
                    try:
                        self._keys = self._read_file(path)
                        logger.info("auth.jwks_reloaded keys=%d", len(self._keys.keys))
                    except ValueError as exc:
                        logger.error("auth.jwks_unusable kept=previous reason=%s", exc)
        return self._keys

    @staticmethod
    def _read_file(path: Path) -> jwt.PyJWKSet:
        try:
            return jwt.PyJWKSet.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise ValueError(f"{path}: not a usable JWKS ({type(exc).__name__}: {exc})") from None


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
