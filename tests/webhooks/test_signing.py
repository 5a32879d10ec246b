"""The dispatcher's signer agrees with the `standardwebhooks` library byte for byte, and a
receiver holding any one of an endpoint's active secrets accepts its signature."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from service.webhooks.signing import Signer

OLD = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
OTHER = "whsec_" + "QUJD" * 8
BODY = '{"type":"session.expired","timestamp":"2026-03-01T00:00:00Z","data":{"user_id":"u1"}}'


def test_one_secret_signs_as_the_library_does() -> None:
    now = datetime.now(UTC)
    assert Signer((NEW,)).header("msg_1", now, BODY) == Webhook(NEW).sign("msg_1", now, BODY)


def test_each_active_secret_verifies_and_no_other_does() -> None:
    now = datetime.now(UTC)
    signature = Signer((OLD, NEW)).header("msg_2", now, BODY)
    assert len(signature.split(" ")) == 2
    headers = {"webhook-id": "msg_2", "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": signature}
    for secret in (OLD, NEW):
        assert Webhook(secret).verify(BODY, headers)["data"] == {"user_id": "u1"}
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(NEW).verify(BODY.replace("u1", "u2"), headers)
