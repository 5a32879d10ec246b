"""A dispatcher in a process of its own, run until killed (the crash test SIGKILLs it).

Usage: python -m tests.webhooks.dispatcher_process DATABASE_URL, with the webhooks
configuration as JSON in WEBHOOKS_CONFIG (not on the command line: it holds secrets).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from service import db
from service.webhooks.config import WebhooksConfig
from service.webhooks.dispatcher import Dispatcher


async def main(url: str) -> None:
    config = WebhooksConfig.from_mapping(json.loads(os.environ["WEBHOOKS_CONFIG"]))
    ctx = await db.open_context(url)
    dispatcher = Dispatcher(config, "doomed")
    dispatcher.start(ctx)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
