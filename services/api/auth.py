"""Who may call the API: bearer tokens, each with a name and a role, from a file of hashes.

The file (API_AUTH_TOKENS_FILE, a mounted Kubernetes Secret in the chart) holds one token per
line, `<name> <role> sha256:<hex digest of the token>`; blank lines and `#` comments are
skipped. Only digests are kept: a leaked file lets no one in. Several lines may share a name
and role, so a token is rotated without downtime: add the new one, move the clients, remove the
old one. The file is read again when it changes (a Secret's update reaches a mounted file
within a minute or so), at most once a second: see TokenTable for how a changed file that is
partly wrong is taken.

A presented token is hashed and compared with every digest in constant time, whether or not an
earlier one matched, so the time an answer takes says nothing about which entries exist.
`python -m services.api new-token NAME ROLE` makes a token and its line.
"""

import enum
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.api.problems import Problem
from services.contract import logs

log = logs.get_logger(__name__)

# Paths anyone may call, whatever API_AUTH says: the page and its files, the probes, the
# metrics and the API's description; none holds workflow data.
PUBLIC_PATHS = frozenset(
    {"/", "/static/{name}", "/healthz", "/readyz", "/metrics", "/openapi.json"}
)
DIGEST_PREFIX = "sha256:"
RELOAD_CHECK_SECONDS = 1.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}")
_DIGEST = re.compile(DIGEST_PREFIX + r"[0-9a-f]{64}")


class Role(enum.Enum):
    # List and read workflows, their steps, the workers, the workflow types.
    READ = "read"
    # Also enqueue, cancel and resume.
    OPERATE = "operate"

    def allows(self, needed: "Role") -> bool:
        return self is Role.OPERATE or needed is Role.READ


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role

    @property
    def roles(self) -> list[str]:
        """The roles this identity holds (operate includes read)."""
        return [Role.READ.value, Role.OPERATE.value] if self.role is Role.OPERATE else ["read"]


@dataclass(frozen=True)
class _Entry:
    identity: Identity
    digest: bytes


class Rejected(Exception):
    """A bearer token that is not valid, and why, in words that never repeat it."""


class Unavailable(Exception):
    """Who holds the token can't be told now (the identity provider is away): a 503."""


class NoRole(Exception):
    """A valid token whose holder has no role of this API."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


# Who holds a bearer token: the identity, None when nobody known holds it; Rejected or NoRole.
Identify = Callable[[str], "Identity | None"]


class TokenFileError(ValueError):
    """The token file can't be used; the message names the file and the line, never a token."""


def digest(token: str) -> str:
    return DIGEST_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def new_token(name: str, role: str) -> tuple[str, str]:
    """A new random token and its line for the token file."""
    line = f"{name} {role} "
    _parse_line(line + digest("x"), Path("<new>"), 1)  # the name and role must be valid
    token = secrets.token_urlsafe(32)
    return token, line + digest(token)


def _parse_line(line: str, path: Path, number: int) -> _Entry | None:
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    fields = text.split()
    where = f"{path}, line {number}"
    if len(fields) != 3:
        raise TokenFileError(
            f"{where}: expected '<name> <role> sha256:<hex>', got {len(fields)} fields"
        )
    name, role, hashed = fields
    if not _NAME.fullmatch(name):
        raise TokenFileError(
            f"{where}: the name must be 1-128 letters, digits or ._@:- (starting with a letter "
            "or digit)"
        )
    try:
        parsed = Role(role)
    except ValueError:
        raise TokenFileError(f"{where}: the role must be read or operate") from None
    if not _DIGEST.fullmatch(hashed):
        raise TokenFileError(
            f"{where}: the token must be given as sha256:<64 lowercase hex digits> "
            "(python -m services.api new-token makes one); tokens are never stored in clear"
        )
    return _Entry(Identity(name, parsed), bytes.fromhex(hashed.removeprefix(DIGEST_PREFIX)))


def parse_token_file(path: Path) -> tuple[list[_Entry], list[str]]:
    """The file's tokens and what is wrong with it (each problem naming its line); OSError when
    it can't be read at all."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a BOM, as some editors write, is not part of line 1
    except UnicodeDecodeError:
        return [], [f"{path}: not UTF-8 text"]
    entries: list[_Entry] = []
    problems: list[str] = []
    seen: dict[bytes, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            entry = _parse_line(line, path, number)
        except TokenFileError as exc:
            problems.append(str(exc))
            continue
        if entry is None:
            continue
        if entry.digest in seen:
            problems.append(
                f"{path}, line {number}: this token is already on line {seen[entry.digest]}"
            )
            continue
        seen[entry.digest] = number
        entries.append(entry)
    if not entries:
        problems.append(f"{path}: no token in it: nobody could call the API")
    return entries, problems


def read_token_file(path: Path) -> list[_Entry]:
    """The file's tokens, all of them good, or TokenFileError naming the first problem."""
    try:
        entries, problems = parse_token_file(path)
    except OSError as exc:
        raise TokenFileError(f"{path}: cannot read it ({type(exc).__name__})") from None
    if problems:
        raise TokenFileError(problems[0])
    return entries


class TokenTable:
    """The token file, read at start (TokenFileError unless every line is good) and again when
    it changes. A changed file always takes effect: its good lines are the tokens from then on
    (so a removed token is refused at once, whatever else the edit got wrong), its bad lines
    are logged, and one without a good line lets nobody in. Only a file that can't be read at
    all (gone for a moment while the kubelet swaps a Secret's files) keeps the last one."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()  # before reading: a change meanwhile is read again
        self._entries = read_token_file(path)
        self._next_check = time.monotonic() + RELOAD_CHECK_SECONDS

    def identify(self, token: str) -> Identity | None:
        self._reload_if_changed()
        presented = hashlib.sha256(token.encode()).digest()
        found: Identity | None = None
        for entry in self._entries:
            # Every entry compared, match or not: no early exit to time.
            if hmac.compare_digest(presented, entry.digest) and found is None:
                found = entry.identity
        return found

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self._path)
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _reload_if_changed(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        with self._lock:
            if now < self._next_check:
                return
            self._next_check = now + RELOAD_CHECK_SECONDS
            stamp = self._file_stamp()
            if stamp == self._stamp or stamp is None:
                return  # unchanged, or gone for a moment: looked at again next time
            try:
                entries, problems = parse_token_file(self._path)
            except OSError as exc:
                log.error("auth.token_file_unreadable", kept="previous", reason=type(exc).__name__)
                return
            self._stamp, self._entries = stamp, entries
            for problem in problems:
                log.error("auth.token_file_problem", problem=problem)
            log.info("auth.token_file_reloaded", tokens=len(entries))


REALM = "dbos-queue-worker"


def _unauthorized(detail: str, error: str | None) -> Problem:
    challenge = f'Bearer realm="{REALM}"' + (f', error="{error}"' if error else "")
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


def authorize(authorization: str | None, needed: Role, identify: Identify) -> Identity:
    """The caller's identity if its bearer token has the role `needed`; else a 401 (no or a bad
    token) or 403 (a valid token whose role is short) problem. Never repeats the token."""
    if authorization is None:
        raise _unauthorized(
            "this API needs a bearer token: send Authorization: Bearer <token>", None
        )
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        # RFC 6750 3.1: a malformed request is a 400 (with the challenge all the same).
        raise Problem(
            400,
            "Bad Request",
            "the Authorization header must be 'Bearer <token>'",
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_request"'},
        )
    try:
        identity = identify(token.strip())
    except Rejected as exc:
        raise _unauthorized(str(exc), "invalid_token") from None
    except Unavailable:
        raise Problem(
            503,
            "Service Unavailable",
            "the identity provider's keys can't be fetched now; retry shortly",
            headers={"Retry-After": "5"},
        ) from None
    except NoRole as exc:
        raise Problem(
            403,
            "Forbidden",
            f"{exc.name} holds no role of this API (read or operate)",
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope"'},
        ) from None
    if identity is None:
        raise _unauthorized(
            "the bearer token is not valid (unknown, or rotated out)", "invalid_token"
        )
    if not identity.role.allows(needed):
        raise Problem(
            403,
            "Forbidden",
            f"{identity.name} has the role {identity.role.value}; this needs {needed.value}",
            headers={
                "WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", '
                f'scope="{needed.value}"'
            },
        )
    return identity
