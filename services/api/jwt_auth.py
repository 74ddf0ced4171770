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
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from services.api.auth import Identity, NoRole, Rejected, Role, Unavailable
from services.contract import logs

log = logs.get_logger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
LEEWAY_SECONDS = 30
RELOAD_CHECK_SECONDS = 1.0
UNKNOWN_KID_COOLDOWN = 30.0


class JwtRejected(Rejected):
    """Why a JWT is not accepted, in words that never repeat the token."""


class ProviderUnavailable(Unavailable):
    """The provider's keys can't be fetched and none were fetched before: a 503, not a 401 (the
    token may well be good)."""


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
    # How long fetched keys are used before they are fetched again (a removed key stops
    # working within this long); an unknown kid fetches them again at most every 30 s.
    jwks_cache_seconds: float = 300.0


class JwtVerifier:
    """Fetching keys may block (a URL): identify() is called off the event loop."""

    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client: jwt.PyJWKClient | None = None
        self._keys: list[jwt.PyJWK] | None = None
        self._fetched_at = float("-inf")
        self._refreshed_for_unknown_at = float("-inf")
        self._stamp: tuple[int, int, int] | None = None
        self._next_check = 0.0
        if settings.jwks_url is not None:
            # No per-kid cache: it never forgets a key the provider has removed.
            self._client = jwt.PyJWKClient(
                settings.jwks_url, cache_keys=False, cache_jwk_set=False, timeout=5
            )
        else:
            assert settings.jwks_file is not None
            self._stamp = _stamp(settings.jwks_file)
            self._keys = self._read_file(settings.jwks_file)  # ValueError when unusable

    @staticmethod
    def looks_like_one(token: str) -> bool:
        return token.count(".") == 2

    def identify(self, token: str) -> Identity:
        """The caller; JwtRejected when the token is not valid, NoRole when it maps to none,
        ProviderUnavailable when the provider's keys can't be had."""
        settings = self._settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise JwtRejected("the token is not valid (not a JWT)") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise JwtRejected(f"the token's algorithm {algorithm!r} is not accepted")
        claims: dict[str, Any] | None = None
        for key in self._candidates(header.get("kid")):
            try:
                # The key entry itself: PyJWT refuses an algorithm its key type can't sign.
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=settings.audience,
                    issuer=settings.issuer,
                    leeway=LEEWAY_SECONDS,
                    options={"require": ["exp", "iss", "aud"]},
                )
                break
            except jwt.InvalidSignatureError:
                continue  # a token without kid: try the next key
            except jwt.ExpiredSignatureError:
                raise JwtRejected("the token has expired") from None
            except jwt.InvalidAudienceError:
                raise JwtRejected("the token is for another audience") from None
            except jwt.InvalidIssuerError:
                raise JwtRejected("the token is from another issuer") from None
            except jwt.ImmatureSignatureError:
                raise JwtRejected("the token is not valid yet") from None
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                raise JwtRejected(f"the token is not valid ({type(exc).__name__})") from None
        if claims is None:
            raise JwtRejected("the token is not valid (InvalidSignatureError)")
        name = claims.get(settings.name_claim)
        if not isinstance(name, str) or not name:
            raise JwtRejected(f"the token has no {settings.name_claim} claim naming its holder")
        held = claims.get(settings.role_claim, [])
        members = held.split() if isinstance(held, str) else held if isinstance(held, list) else []
        values = {v for v in members if isinstance(v, str)}
        if values & settings.operate_values:
            return Identity(name, Role.OPERATE)
        if values & settings.read_values:
            return Identity(name, Role.READ)
        raise NoRole(name)

    def _candidates(self, kid: object) -> list[jwt.PyJWK]:
        """The signing keys a token of this kid may be signed with (every one, without kid)."""
        keys = self._current_keys(refresh=False)
        signing = [k for k in keys if getattr(k, "public_key_use", None) in (None, "sig")]
        if kid is None:
            found = signing
        else:
            found = [k for k in signing if k.key_id == kid]
            if not found and self._client is not None:
                found = [k for k in self._current_keys(refresh=True) if k.key_id == kid]
        if not found:
            raise JwtRejected("the token is signed with a key the API does not know")
        return found

    def _current_keys(self, refresh: bool) -> list[jwt.PyJWK]:
        if self._client is not None:
            return self._fetched(refresh)
        path = self._settings.jwks_file
        assert path is not None and self._keys is not None
        now = time.monotonic()
        if now >= self._next_check:
            with self._lock:
                self._next_check = now + RELOAD_CHECK_SECONDS
                stamp = _stamp(path)
                if stamp is not None and stamp != self._stamp:
                    self._stamp = stamp
                    try:
                        self._keys = self._read_file(path)
                        log.info("auth.jwks_reloaded", keys=len(self._keys))
                    except ValueError as exc:
                        # A changed file always takes effect: one that doesn't read has no
                        # keys (a key removed in a broken edit must not stay trusted).
                        self._keys = []
                        log.error("auth.jwks_unusable", keys=0, reason=str(exc))
        return self._keys

    def _fetched(self, refresh: bool) -> list[jwt.PyJWK]:
        assert self._client is not None
        now = time.monotonic()
        with self._lock:
            stale = now - self._fetched_at >= self._settings.jwks_cache_seconds
            unknown = refresh and now - self._refreshed_for_unknown_at >= UNKNOWN_KID_COOLDOWN
            if self._keys is not None and not stale and not unknown:
                return self._keys
            if unknown:
                self._refreshed_for_unknown_at = now
            try:
                self._keys = list(self._client.get_jwk_set(refresh=True).keys)
                self._fetched_at = now
            except jwt.PyJWKClientConnectionError as exc:
                if self._keys is None:
                    raise ProviderUnavailable(str(exc)) from None
                # The last keys stand while the provider is away (logged, tried again later).
                log.warning("auth.jwks_unreachable", kept="previous", reason=type(exc).__name__)
                cache = self._settings.jwks_cache_seconds
                self._fetched_at = now - cache + min(cache, 30.0)  # tried again in <= 30 s
            except jwt.PyJWKClientError as exc:
                raise JwtRejected(f"the provider's keys are not usable ({exc})") from None
            return self._keys

    @staticmethod
    def _read_file(path: Path) -> list[jwt.PyJWK]:
        try:
            document = json.loads(path.read_text())
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            return list(jwt.PyJWKSet.from_dict(document).keys)
        except Exception as exc:  # whatever the file holds, a clear reason and no traceback
            raise ValueError(f"{path}: not a usable JWKS ({type(exc).__name__}: {exc})") from None


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
