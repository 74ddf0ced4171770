"""Who holds a bearer token, as the settings say to tell: the token file's tokens
(API_AUTH=tokens), an identity provider's JWTs (API_AUTH=jwt, with the file's tokens too when
one is set), or nobody checks (API_AUTH=none)."""

from pathlib import Path

from services.api.auth import Identify, Identity, TokenTable
from services.api.jwt_auth import JwtSettings, JwtVerifier
from services.api.settings import ApiSettings


def _values(text: str) -> frozenset[str]:
    return frozenset(v.strip() for v in text.split(",") if v.strip())


def identify_from(settings: ApiSettings) -> Identify | None:
    """None when API_AUTH=none; ValueError (TokenFileError included) when the token file or
    the provider's keys file can't be used."""
    if settings.auth == "none":
        return None
    table = (
        None if settings.auth_tokens_file is None else TokenTable(Path(settings.auth_tokens_file))
    )
    verifier = None
    if settings.auth == "jwt":
        assert settings.jwt_issuer is not None and settings.jwt_audience is not None
        verifier = JwtVerifier(
            JwtSettings(
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                jwks_file=None if settings.jwks_file is None else Path(settings.jwks_file),
                jwks_url=settings.jwks_url,
                name_claim=settings.jwt_name_claim,
                role_claim=settings.jwt_role_claim,
                read_values=_values(settings.jwt_read_values),
                operate_values=_values(settings.jwt_operate_values),
                jwks_cache_seconds=settings.jwks_cache_seconds,
            )
        )
    return Credentials(table, verifier)


class Credentials:
    """The token file's tokens, then the provider's JWTs. `blocking`: telling may fetch the
    provider's keys, so it is done off the event loop."""

    def __init__(self, table: TokenTable | None, verifier: JwtVerifier | None) -> None:
        self._table = table
        self._verifier = verifier
        self.blocking = verifier is not None

    def __call__(self, token: str) -> Identity | None:
        if self._table is not None and (known := self._table.identify(token)) is not None:
            return known
        if self._verifier is not None and self._verifier.looks_like_one(token):
            return self._verifier.identify(token)
        return None
