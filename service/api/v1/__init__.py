"""Version 1 of the HTTP API."""

from __future__ import annotations

from aiohttp import web

from service.api.v1 import auth, openapi, sync, webhooks


def add_routes(app: web.Application) -> None:
    app.router.add_routes(auth.routes)
    app.router.add_routes(sync.routes)
    webhooks.add_routes(app)
    app.router.add_get("/api/v1/openapi.json", openapi.openapi)
