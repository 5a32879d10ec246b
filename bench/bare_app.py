"""The baseline server: a bare aiohttp app answering one fixed body on any GET.

Started as its own process exactly like `garmin-sync serve` (web.run_app, no access log),
so "service requests/s divided by bare requests/s" compares the service with aiohttp itself.

    python -m bench.bare_app --port P --body FILE
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aiohttp import web


def create_app(body: bytes) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", required=True, help="file whose bytes every GET answers")
    args = parser.parse_args()
    web.run_app(create_app(Path(args.body).read_bytes()), host=args.host, port=args.port,
                print=None, access_log=None)


if __name__ == "__main__":
    main()
