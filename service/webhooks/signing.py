"""Webhook signatures per the Standard Webhooks specification (`webhook-signature`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

from standardwebhooks import Webhook


class Signer:
    """Signs as `standardwebhooks.Webhook.sign` does, `v1,<base64>` per active secret,
    space-separated (the receiver accepts any match), with each secret's HMAC keyed once:
    every delivery copies the keyed state instead of hashing the key again."""

    def __init__(self, endpoint_secrets: tuple[str, ...]) -> None:
        self._keyed = tuple(hmac.new(Webhook(secret)._whsecret, digestmod=hashlib.sha256)
                            for secret in endpoint_secrets)

    def header(self, message_id: str, timestamp: datetime, body: str) -> str:
        signed = f"{message_id}.{int(timestamp.timestamp())}.{body}".encode()
        signatures = []
        for keyed in self._keyed:
            mac = keyed.copy()
            mac.update(signed)
            signatures.append("v1," + base64.b64encode(mac.digest()).decode())
        return " ".join(signatures)
