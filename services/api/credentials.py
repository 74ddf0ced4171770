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
            )
        )

    def identify(token: str) -> Identity | None:
        if table is not None and (known := table.identify(token)) is not None:
            return known
        if verifier is not None and verifier.looks_like_one(token):
            return verifier.identify(token)
        return None

    return identify
