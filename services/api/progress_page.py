"""The progress page at GET /: workflows with progress bars, filters, a workflow's steps, and a
form to enqueue any type of the registry (built from its input schema).

Plain files shipped in the package and read once: no build step, nothing from a CDN, so the
page works offline and its Content-Security-Policy allows only this origin.
"""

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from services.api.problems import Problem

_FILES = resources.files("services.api") / "static"
_MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "form.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_CONTENT = {name: _FILES.joinpath(name).read_bytes() for name in _MEDIA_TYPES}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "Cache-Control": "no-cache",
}


def _serve(name: str) -> Response:
    return Response(_CONTENT[name], media_type=_MEDIA_TYPES[name], headers=_HEADERS)


async def index(request: Request) -> Response:
    return _serve("index.html")


async def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _CONTENT or name == "index.html":
        raise Problem(404, "Not Found", f"no static file named {name}")
    return _serve(name)
