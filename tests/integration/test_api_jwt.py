"""API_AUTH=jwt: JWTs of an identity provider, verified against its keys (a JWKS file), issuer,
audience and times; a claim names the caller and another maps to a role. Every way a token
can be wrong is a 401 that says which, never a 5xx; the token file's tokens still work."""

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1
from cryptography.hazmat.primitives.asymmetric.ec import generate_private_key as ec_key

from services.api import auth
from tests.conftest import NewDatabase
from tests.support.polling import wait_for
from tests.support.processes import Api

ISSUER, AUDIENCE = "https://id.example.com/", "dbos-queue-worker"
# What every API of these tests is started with: JWTs of this issuer, for this audience.
JWT = {"API_AUTH": "jwt", "API_AUTH_JWT_ISSUER": ISSUER, "API_AUTH_JWT_AUDIENCE": AUDIENCE}


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Provider:
    def __init__(self, path: Path) -> None:
        self.key = _key()
        self.path = path
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        path.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))

    def token(self, key: Any = None, kid: str = "k1", alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.key, algorithm=alg, headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(alg: str, secret: bytes, now: int) -> str:
    """A token an attacker builds by hand (libraries refuse to)."""
    header = _b64(json.dumps({"alg": alg, "kid": "k1", "typ": "JWT"}).encode())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "eve", "exp": now + 300, "groups": ["ops"]}
    body = _b64(json.dumps(claims).encode())
    signed = f"{header}.{body}".encode()
    signature = _b64(hmac.new(secret, signed, hashlib.sha256).digest()) if secret else ""
    return f"{header}.{body}.{signature}"


@pytest.fixture
def provider(tmp_path: Path) -> Provider:
    return Provider(tmp_path / "jwks.json")


@pytest.fixture
def api(
    new_migrated_database: NewDatabase, tmp_path: Path, provider: Provider
) -> Iterator[tuple[Api, str]]:
    machine, line = auth.new_token("ci-bot", "operate")
    (tmp_path / "tokens").write_text(line + "\n")
    api = Api(
        new_migrated_database("sqlite"),
        tmp_path,
        **JWT,
        API_AUTH_JWKS_FILE=str(provider.path),
        API_AUTH_JWT_ROLE_CLAIM="groups",
        API_AUTH_JWT_READ_VALUES="developers",
        API_AUTH_JWT_OPERATE_VALUES="platform,ops",
        API_AUTH_TOKENS_FILE=str(tmp_path / "tokens"),
    )
    api.wait_ready()
    yield api, machine
    api.stop()


def _post(api: Api, token: str) -> Any:
    return api.http.post("/workflows", json={}, headers={"Authorization": f"Bearer {token}"})


def test_roles_come_from_the_providers_claims(api: tuple[Api, str], provider: Provider) -> None:
    served, machine = api
    operator = provider.token(groups=["developers", "ops"])
    answer = _post(served, operator)
    assert answer.status_code == 202, answer.text
    (entry,) = served.http.get("/audit", headers={"Authorization": f"Bearer {operator}"}).json()[
        "entries"
    ]
    assert (entry["actor"], entry["roles"]) == ("alice", ["read", "operate"])
    reader = provider.token(sub="bob", groups="developers qa")  # a scope-like string
    assert (
        served.http.get("/workflows", headers={"Authorization": f"Bearer {reader}"}).status_code
        == 200
    )
    refused = _post(served, reader)
    assert refused.status_code == 403 and "bob has the role read" in refused.json()["detail"]
    nobody = _post(served, provider.token(sub="carol", groups=["marketing"]))
    assert nobody.status_code == 403
    assert "carol holds no role of this API" in nobody.json()["detail"]
    # The token file's tokens still work beside the provider's.
    assert _post(served, machine).status_code == 202


def test_every_wrong_token_is_a_401_saying_why(api: tuple[Api, str], provider: Provider) -> None:
    served, _ = api
    now = int(time.time())
    stranger = _key()
    cases = {
        "expired": (provider.token(groups=["ops"], exp=now - 120), "has expired"),
        "audience": (provider.token(groups=["ops"], aud="another-api"), "another audience"),
        "issuer": (provider.token(groups=["ops"], iss="https://evil.example/"), "another issuer"),
        "not yet": (provider.token(groups=["ops"], nbf=now + 600), "not valid yet"),
        "no expiry": (provider.token(groups=["ops"], exp=None), "not valid"),
        "other key": (provider.token(key=stranger, groups=["ops"]), "not valid"),
        "unknown kid": (provider.token(kid="k9", groups=["ops"]), "key the API does not know"),
        "no subject": (provider.token(groups=["ops"], sub=None), "no sub claim"),
        # An HMAC token keyed with the public key (algorithm confusion), and alg none.
        "hs256": (_forge("HS256", provider.path.read_bytes(), now), "'HS256' is not accepted"),
        "none": (_forge("none", b"", now), "'none' is not accepted"),
        "garbage": ("a.b.c", "not valid"),
    }
    for what, (token, reason) in cases.items():
        answer = _post(served, token)
        assert answer.status_code == 401, (what, answer.text)
        assert 'error="invalid_token"' in answer.headers["www-authenticate"], what
        assert reason in answer.json()["detail"], (what, answer.json()["detail"])
        assert token not in answer.text
    assert "Traceback" not in served.service.log()
    assert served.http.get("/workflows?limit=1").status_code == 401


def test_jwt_needs_its_provider_settings() -> None:
    from services.api.settings import ApiSettings

    with pytest.raises(
        ValueError, match="API_AUTH=jwt needs API_AUTH_JWT_ISSUER and API_AUTH_JWT_AUDIENCE"
    ):
        ApiSettings.from_env({"API_AUTH": "jwt"})
    with pytest.raises(ValueError, match="exactly one of API_AUTH_JWKS_FILE and API_AUTH_JWKS_URL"):
        ApiSettings.from_env(
            {"API_AUTH": "jwt", "API_AUTH_JWT_ISSUER": ISSUER, "API_AUTH_JWT_AUDIENCE": AUDIENCE}
        )


def test_keys_from_the_providers_jwks_url(
    new_migrated_database: NewDatabase, tmp_path: Path, provider: Provider
) -> None:
    served = provider.path.read_bytes()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(served)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = Api(
        new_migrated_database("sqlite"),
        tmp_path,
        **JWT,
        API_AUTH_JWKS_URL=f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json",
    )
    try:
        api.wait_ready()
        assert _post(api, provider.token(roles=["operate"])).status_code == 202
        assert _post(api, provider.token(key=_key(), roles=["operate"])).status_code == 401
    finally:
        api.stop()
        server.shutdown()
        server.server_close()


class JwksServer:
    """The provider's JWKS endpoint: its keys can change, it can be slow, it can be down."""

    def __init__(self, jwks: bytes) -> None:
        self.jwks = jwks
        self.delay = 0.0
        self.failing = False
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                time.sleep(outer.delay)  # a slow provider (the scenario, not a wait)
                if outer.failing:
                    self.send_response(503)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(outer.jwks)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks.json"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _url_api(url: str, tmp_path: Path, jwks_url: str, **env: str) -> Api:
    return Api(
        url,
        tmp_path,
        **JWT,
        API_AUTH_JWKS_URL=jwks_url,
        **env,
    )


def test_a_key_of_another_type_than_the_tokens_algorithm_is_a_401_not_a_500(
    api: tuple[Api, str], provider: Provider
) -> None:
    served, _ = api
    ec = ec_key(SECP256R1())
    # Signed with an EC key, naming the provider's RSA key: PyJWT must refuse, not crash.
    forged = provider.token(key=ec, alg="ES256", groups=["ops"])
    answer = _post(served, forged)
    assert answer.status_code == 401, answer.text
    assert "Traceback" not in served.service.log()


def test_a_key_the_provider_removes_stops_working_and_an_outage_is_a_503(
    new_migrated_database: NewDatabase, tmp_path: Path, provider: Provider
) -> None:
    jwks = JwksServer(provider.path.read_bytes())
    api = _url_api(
        new_migrated_database("sqlite"), tmp_path, jwks.url, API_AUTH_JWKS_CACHE_SECONDS="1"
    )
    try:
        api.wait_ready()
        old = provider.token(roles=["operate"])
        assert _post(api, old).status_code == 202
        # The provider is away: the keys it gave stay in use (the API never makes a good token
        # look bad because of an outage).
        jwks.failing = True
        wait_for(
            lambda: _post(api, old).status_code == 202 and jwks.fetches >= 2,
            timeout=15,
            what="a fetch during the outage, the token still accepted",
        )
        # The provider rotates its key out: tokens of the old key are refused once the keys
        # are fetched again.
        jwks.failing = False
        replacement = Provider(tmp_path / "next.json")
        jwks.jwks = replacement.path.read_bytes()
        wait_for(lambda: _post(api, old).status_code == 401, timeout=15, what="the old key refused")
        assert _post(api, replacement.token(roles=["operate"])).status_code == 202
    finally:
        api.stop()
        jwks.close()


def test_no_keys_yet_is_a_503_and_a_slow_provider_holds_up_no_one_else(
    new_migrated_database: NewDatabase, tmp_path: Path, provider: Provider
) -> None:
    jwks = JwksServer(provider.path.read_bytes())
    jwks.failing = True
    api = _url_api(new_migrated_database("sqlite"), tmp_path, jwks.url)
    try:
        api.wait_ready()
        refused = _post(api, provider.token(roles=["operate"]))
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        # A provider taking 3 s to answer: the health check answers meanwhile.
        jwks.failing, jwks.delay = False, 3.0
        done: dict[str, float] = {}

        def slow_call() -> None:
            _post(api, provider.token(roles=["operate"]))
            done["jwt"] = time.monotonic()

        caller = threading.Thread(target=slow_call)
        caller.start()
        wait_for(lambda: jwks.fetches >= 2, timeout=10, what="the slow fetch to start")
        assert api.http.get("/healthz").status_code == 200
        done["healthz"] = time.monotonic()
        caller.join(timeout=30)
        assert done["healthz"] < done["jwt"]
    finally:
        api.stop()
        jwks.close()


def test_a_broken_edit_of_the_keys_file_trusts_no_key(
    api: tuple[Api, str], provider: Provider
) -> None:
    served, _ = api
    token = provider.token(groups=["ops"])
    assert _post(served, token).status_code == 202
    provider.path.write_text('{"keys": [ {"kty": "RSA", "kid": "k1"')  # cut short
    wait_for(lambda: _post(served, token).status_code == 401, timeout=10, what="no key trusted")
    assert "auth.jwks_unusable" in served.service.log()
