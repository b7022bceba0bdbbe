"""GET /docs: the interactive API documentation, Swagger UI served from the app itself.

Assets come from static/vendor/swagger-ui (npm swagger-ui-dist, copied by scripts/vendor-assets)
and the start-up script from static/docs-init.js: no CDN, no inline script, strict CSP kept.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

DOCS_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>audit-timeline API</title>
  <link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"><noscript>The API documentation needs JavaScript; the
    machine-readable document is <a href="/openapi.json">/openapi.json</a>.</noscript></div>
  <script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="/static/docs-init.js"></script>
</body>
</html>
"""


@router.get("/docs", response_class=HTMLResponse)
async def docs() -> HTMLResponse:
    return HTMLResponse(DOCS_PAGE)
