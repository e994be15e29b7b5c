"""The dashboard's page: the static files under ``static/`` served by the admin app.

The page holds no data: it asks for the admin token itself (kept in the browser's
sessionStorage, sent as ``Authorization: Bearer``) and polls ``/admin/stats`` and the
rollout endpoints, so its files need only the admin's Host check, not the token.  They
are served with a Content-Security-Policy that allows only this origin's scripts and
styles and no framing (the page has buttons).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

STATIC = Path(__file__).parent / "static"
PAGE_FILES = {
    "/": ("dashboard.html", "text/html"),
    "/dashboard.js": ("dashboard.js", "text/javascript"),
    "/dashboard.css": ("dashboard.css", "text/css"),
}
PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


def page_endpoints() -> list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]]:
    """The dashboard's static files: no data in them, so only the Host check guards them."""

    async def page(request: Request) -> Response:
        name, media = PAGE_FILES[request.url.path]
        return FileResponse(STATIC / name, media_type=media, headers=PAGE_HEADERS)

    return [(path, page, ["GET"]) for path in PAGE_FILES]
