# garmin-sync: migrations, then the API. Configure with GARMIN_SYNC_* variables.
#   docker build -t garmin-sync .
#   podman build --format docker --build-arg BASE_IMAGE=garmin-sync-base:bookworm -t garmin-sync .
# (deploy/make-base-image.sh builds that base from Debian's packages, without a registry.)
# Any Debian-like image with python3 (3.11, as the lock targets) and its venv module will do.
ARG BASE_IMAGE=python:3.11-slim

# --- build: a virtualenv holding exactly the runtime lock, then the project without deps
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/runtime.txt requirements/build.txt requirements/
# Behind a TLS-inspecting proxy, hand pip the proxy's CA bundle as a build secret (it stays
# out of the layers): --secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && python3 -m venv /opt/garmin-sync \
    && /opt/garmin-sync/bin/pip install --require-hashes -r requirements/runtime.txt \
    && /opt/garmin-sync/bin/pip install --require-hashes -r requirements/build.txt
COPY pyproject.toml README.md ./
COPY service ./service
# the build backend and pip are not needed to run: they leave the final image
RUN /opt/garmin-sync/bin/pip install --no-deps --no-build-isolation . \
    && /opt/garmin-sync/bin/pip uninstall --yes setuptools pip \
    && /opt/garmin-sync/bin/python -m compileall -q /opt/garmin-sync/lib

# --- run
FROM ${BASE_IMAGE}
ENV PATH=/opt/garmin-sync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GARMIN_SYNC_CONFIG=/app/config.yaml \
    GARMIN_SYNC_MIGRATIONS_DIR=/app/migrations \
    GARMIN_SYNC_HTTP_HOST=0.0.0.0 \
    GARMIN_SYNC_HTTP_PORT=8080 \
    GARMIN_SYNC_SECURITY_DATA_DIR=/data \
    GARMIN_SYNC_DATABASE_URL=sqlite:///data/garmin-sync.sqlite3 \
    GARMIN_SYNC_LOGGING_FORMAT=json

# a fixed numeric uid, so volumes and `runAsUser` policies can name it; /data (the SQLite
# database and, on SQLite, the generated encryption key) is the only place it may write
RUN groupadd --gid 10001 garmin \
    && useradd --uid 10001 --gid garmin --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin garmin \
    && mkdir /data && chown 10001:10001 /data && chmod 0700 /data
COPY --from=build /opt/garmin-sync /opt/garmin-sync
WORKDIR /app
COPY config.yaml ./
COPY migrations ./migrations

USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
# healthy = ready: the database answers (and the scheduler runs where enabled). Python, as
# the base may lack curl. Kubernetes ignores HEALTHCHECK: probe /healthz and /readyz there.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('GARMIN_SYNC_HTTP_PORT', '8080'), timeout=2)"]
STOPSIGNAL SIGTERM

# `serve` applies pending migrations itself (database.auto_migrate); running `migrate`
# first makes a failed migration stop the container before it takes traffic. With several
# replicas, run `garmin-sync migrate` once as a release step instead (docs/deployment.md).
CMD ["sh", "-c", "garmin-sync migrate && exec garmin-sync serve"]
