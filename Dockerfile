# garmin-sync: migrations, then the API. Configure with GARMIN_SYNC_* variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GARMIN_SYNC_CONFIG=/app/config.yaml \
    GARMIN_SYNC_MIGRATIONS_DIR=/app/migrations \
    GARMIN_SYNC_HTTP_HOST=0.0.0.0 \
    GARMIN_SYNC_HTTP_PORT=8080 \
    GARMIN_SYNC_SECURITY_DATA_DIR=/data \
    GARMIN_SYNC_DATABASE_URL=sqlite:///data/garmin-sync.sqlite3 \
    GARMIN_SYNC_LOGGING_FORMAT=json

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install . && useradd --system --uid 10001 --home-dir /app garmin \
    && mkdir -p /data && chown garmin /data
COPY config.yaml ./
COPY migrations ./migrations

USER garmin
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GARMIN_SYNC_HTTP_PORT', '8080'), timeout=2)" || exit 1

# `serve` applies pending migrations itself (database.auto_migrate); running `migrate`
# first makes a failed migration stop the container before it takes traffic.
CMD ["sh", "-c", "garmin-sync migrate && exec garmin-sync serve"]
