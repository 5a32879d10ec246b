"""Signed webhooks from a transactional outbox (see docs/webhooks.md).

`events` builds the payloads, `outbox` writes them in the caller's transaction and claims
them for delivery, `dispatcher` signs them and `sender` POSTs them (over `http1`
connections), `targets` keeps them off private addresses, `retention` deletes what was
finished long enough ago (the dispatcher runs it), `api` lists and retries deliveries and
runs the dispatcher in the app.
"""
