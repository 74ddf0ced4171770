"""What a request body must be before a handler reads it: the guard of every state-changing
request, the JSON body within its size limit, and its model, with problems that name the field."""

from typing import Final, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from services.api import schemas
from services.api.problems import Problem

JSON_MEDIA_TYPE: Final = "application/json"
M = TypeVar("M", bound=BaseModel)


def _media_type(request: Request) -> str | None:
    content_type = request.headers.get("content-type")
    return None if content_type is None else content_type.split(";")[0].strip().lower()


def _unsupported_media_type() -> Problem:
    return Problem(
        415,
        "Unsupported Media Type",
        f"send the request body as {JSON_MEDIA_TYPE} with Content-Type: {JSON_MEDIA_TYPE} "
        "(an enqueue needs it even with an empty body; a cancel or resume may send none)",
    )


def guard_state_change(request: Request) -> None:
    """What every request that may change state must pass, before anything else runs.

    A page of another site can send a POST without asking (an HTML form, or fetch() in no-cors
    mode): browsers mark it `Sec-Fetch-Site: cross-site` (or `same-site` from a sibling
    subdomain or another port of the host) and send its `Origin`; API clients send neither,
    and a same-origin page (the progress page) says `same-origin`. A form can only declare a
    form or text/plain Content-Type, never JSON. With tokens on, a browser never attaches one
    by itself; without them (API_AUTH=none) these checks are all that stands in the way.
    """
    site = request.headers.get("sec-fetch-site", "").strip().lower()
    if site not in ("", "same-origin", "none"):
        raise Problem(
            403,
            "Forbidden",
            "requests from another site's pages may not change anything: this one came from "
            f"one (Sec-Fetch-Site: {site})",
        )
    origin = request.headers.get("origin")
    # Sec-Fetch-Site, when given, is the browser's own word (a page can't set it): a same-origin
    # request passes whatever Host a proxy hands on. The Origin is judged where it is missing.
    if origin is not None and site != "same-origin":
        hosts = {request.headers.get("host", "").lower()}
        hosts.add(request.headers.get("x-forwarded-host", "").lower())
        if urlsplit(origin).netloc.lower() not in hosts - {""}:
            raise Problem(
                403,
                "Forbidden",
                f"requests from another site's pages may not change anything: Origin {origin} "
                "is not this API's",
            )
    media_type = _media_type(request)
    if media_type is not None and media_type != JSON_MEDIA_TYPE:
        raise _unsupported_media_type()


def require_json(request: Request) -> None:
    """An enqueue always declares its JSON, even when its body is empty: a cross-site page can
    send a POST with no Content-Type as a simple request, never one with this one."""
    if _media_type(request) != JSON_MEDIA_TYPE:
        raise _unsupported_media_type()


async def read_json_body(request: Request, limit: int = schemas.MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _too_large(limit)
    if body.strip() and _media_type(request) != JSON_MEDIA_TYPE:
        raise _unsupported_media_type()
    return bytes(body)


def _too_large(limit: int) -> Problem:
    return Problem(413, "Content Too Large", f"request body is larger than {limit} bytes")


def parse_json(body: bytes, model: type[M]) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        syntax = [e["msg"] for e in exc.errors() if e["type"] == "json_invalid"]
        if syntax:
            raise Problem(
                400, "Bad Request", f"request body is not valid JSON: {syntax[0]}"
            ) from None
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
            for err in exc.errors(include_input=False, include_url=False)
        ]
        raise unprocessable(errors) from None


def unprocessable(errors: list[dict[str, str]]) -> Problem:
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Problem(422, "Unprocessable Content", detail, errors=errors)
