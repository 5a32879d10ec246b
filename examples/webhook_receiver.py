import os

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

hook = Webhook(os.environ["WEBHOOK_SECRET"])  # whsec_..., as in webhooks.endpoints


async def garmin_events(request: web.Request) -> web.Response:
    try:  # the signature over the raw body, and a timestamp at most 5 minutes old
        event = hook.verify(await request.text(), dict(request.headers))
    except WebhookVerificationError:
        return web.Response(status=401)
    # at least once: skip a webhook-id you have already handled
    if event["type"] == "session.expired":
        print("ask", event["data"]["user_id"], "to reconnect Garmin")
    return web.Response(status=204)  # answer fast; slow work goes to a queue


app = web.Application()
app.router.add_post("/garmin-events", garmin_events)
if __name__ == "__main__":
    web.run_app(app, port=8000)
