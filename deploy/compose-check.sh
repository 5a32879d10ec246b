#!/usr/bin/env bash
# Bring deploy/compose.yaml up with podman-compose (or COMPOSE="docker compose") and check it:
# migrate exits 0 before the replicas start, both replicas turn healthy, a login and a manual
# sync through the API replica succeed, and the worker replica's scheduler syncs the user on
# its own. Then everything is removed (volumes too). Needs the image garmin-sync:check
# (make image-check builds it) and builds garmin-sync-postgres:check from Debian's packages.
set -euo pipefail
cd "$(dirname "$0")"

COMPOSE=${COMPOSE:-podman-compose}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/containers.conf}
export GARMIN_SYNC_IMAGE=${GARMIN_SYNC_IMAGE:-garmin-sync:check}
export POSTGRES_IMAGE=${POSTGRES_IMAGE:-garmin-sync-postgres:check}
export GARMIN_SYNC_AUTH_API_KEYS=compose-check-key-0123456789
project=gs-compose-check
compose=($COMPOSE -p "$project" -f compose.yaml -f compose.check.yaml)
scratch=$(mktemp -d)

ok() { printf '    ok: %s\n' "$*"; }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
container() { podman ps -a --format '{{.Names}}' --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1" | head -1; }
cleanup() {
    local status=$?
    if ((status != 0)); then
        for service in migrate api worker sandbox postgres; do
            name=$(container "$service") || true
            [[ -n $name ]] || continue
            echo "--- last log lines of $name" >&2
            podman logs --tail 15 "$name" >&2 || true
        done
    fi
    "${compose[@]}" down -v >/dev/null 2>&1 || true
    rm -rf "$scratch"
}
trap cleanup EXIT

api() {  # api METHOD PATH [BODY]: the HTTP status; the body in $scratch/body
    local args=(-sS -o "$scratch/body" -w '%{http_code}' -X "$1"
        -H "Authorization: Bearer $GARMIN_SYNC_AUTH_API_KEYS" -H "X-User-Id: compose-u1")
    [[ -z ${3:-} ]] || args+=(-H 'Content-Type: application/json' -d "$3")
    curl "${args[@]}" "http://127.0.0.1:$GARMIN_SYNC_API_PORT$2"
}
body() { python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print($1)" "$scratch/body"; }
sql() { podman exec "$(container postgres)" psql -U garmin -d garmin_sync -Atc "$1"; }

echo "=== images"
podman image exists "$GARMIN_SYNC_IMAGE" || fail "$GARMIN_SYNC_IMAGE missing: run make image-check"
if ! podman image exists "$POSTGRES_IMAGE"; then
    podman build --format docker --network host -t "$POSTGRES_IMAGE" postgres
fi
ok "$GARMIN_SYNC_IMAGE and $POSTGRES_IMAGE"
$COMPOSE version 2>/dev/null | tail -1 || true
GARMIN_SYNC_SECURITY_ENCRYPTION_KEYS=$(podman run --rm "$GARMIN_SYNC_IMAGE" garmin-sync generate-key \
    2>/dev/null)
export GARMIN_SYNC_SECURITY_ENCRYPTION_KEYS
GARMIN_SYNC_API_PORT=$(free_port) GARMIN_SYNC_WORKER_PORT=$(free_port) \
    GARMIN_SYNC_SANDBOX_PORT=$(free_port)
export GARMIN_SYNC_API_PORT GARMIN_SYNC_WORKER_PORT GARMIN_SYNC_SANDBOX_PORT

echo "=== ${compose[*]} config (validated, merged)"
"${compose[@]}" config >"$scratch/config.yaml" || fail "compose config"
ok "services: $(python3 -c 'import sys, yaml; print(" ".join(yaml.safe_load(open(sys.argv[1]))["services"]))' "$scratch/config.yaml")"

up() {  # up [options] [services]
    "${compose[@]}" up -d "$@" >"$scratch/up.log" 2>&1 || { tail -30 "$scratch/up.log"; fail "up $*"; }
}
wait_healthy() {
    local name i
    name=$(container "$1")
    for i in $(seq 60); do
        podman healthcheck run "$name" >/dev/null 2>&1 && break
        ((i < 60)) || fail "$1 not healthy within 60 s"
        sleep 1
    done
    ok "$1 ($name): $(podman inspect --format '{{.State.Health.Status}}' "$name")"
}

podman_version=$(podman version --format '{{.Client.Version}}')
if [[ $COMPOSE == *podman-compose* ]] &&
    python3 -c 'import sys; sys.exit(tuple(map(int, sys.argv[1].split(".")[:2])) >= (4, 6))' \
        "$podman_version"; then
    # podman-compose needs podman >= 4.6 for depends_on conditions (older ones neither wait
    # for `service_healthy` nor start a chain of dependencies): take the same steps by hand
    echo "=== up, step by step (podman $podman_version is older than 4.6)"
    up --no-deps postgres sandbox
    wait_healthy postgres
    up --no-deps migrate
    for i in $(seq 90); do
        state=$(podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$(container migrate)")
        [[ $state == exited* ]] && break
        sleep 1
    done
    up --no-deps api worker
else
    echo "=== up"
    up
fi
ok "up -d returned"

echo "=== the release order"
for i in $(seq 90); do
    state=$(podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$(container migrate)" 2>/dev/null || true)
    [[ $state == "exited 0" ]] && break
    [[ $state != exited* ]] || fail "migrate ended with $state"
    ((i < 90)) || fail "migrate did not finish within 90 s"
    sleep 1
done
ok "migrate: $(podman logs "$(container migrate)" 2>&1 | tail -1), exit code 0"
migrate_done=$(podman inspect --format '{{.State.FinishedAt}}' "$(container migrate)")
for service in api worker; do
    started=$(podman inspect --format '{{.State.StartedAt}}' "$(container "$service")")
    python3 - "$migrate_done" "$started" <<'PY' || fail "$service started before migrate ended"
import sys
from datetime import datetime
def parse(text):  # podman prints Go's time format: 2026-12-02 13:16:21.662 +0000 UTC
    day, clock = text.split()[:2]
    return datetime.fromisoformat(f"{day}T{clock[:15]}")
sys.exit(parse(sys.argv[2]) < parse(sys.argv[1]))
PY
    ok "$service started at ${started%.*}, after migrate finished at ${migrate_done%.*}"
done

echo "=== replicas healthy"
wait_healthy api
wait_healthy worker

echo "=== login and a manual sync through the API replica"
[[ $(api POST /api/v1/garmin/session/login \
    '{"username": "alice@example.com", "password": "alice-sandbox-pw"}') == 200 ]] ||
    fail "login: $(cat "$scratch/body")"
ok "login: $(body 'd["status"]')"
for i in $(seq 30); do  # 409 while the worker's first sync of the user holds its lease
    code=$(api POST /api/v1/garmin/sync '{"kinds": ["activities"]}')
    [[ $code == 202 ]] && break
    [[ $code == 409 && $i -lt 30 ]] || fail "sync: $code $(cat "$scratch/body")"
    sleep 1
done
for i in $(seq 60); do
    api GET /api/v1/garmin/sync/jobs >/dev/null
    [[ $(body '[j["status"] for j in d["items"] if j["trigger"] == "manual"]') == "['SUCCESS']" ]] && break
    ((i < 60)) || fail "manual sync: $(cat "$scratch/body")"
    sleep 1
done
ok "manual sync: SUCCESS"

echo "=== the worker replica's scheduler syncs the user by itself"
for i in $(seq 60); do
    scheduled=$(sql "SELECT count(*) FROM sync_job WHERE trigger = 'scheduled' AND status = 'SUCCESS'")
    ((scheduled > 0)) && break
    ((i < 60)) || fail "no scheduled sync within 60 s"
    sleep 1
done
api_host=$(podman inspect --format '{{.Config.Hostname}}' "$(container api)")
worker_host=$(podman inspect --format '{{.Config.Hostname}}' "$(container worker)")
sql "SELECT trigger, kind, status, split_part(worker, ':', 1) FROM sync_job ORDER BY id" |
    sed 's/^/    /'
ok "scheduled jobs ran on the worker ($worker_host), manual ones on the API replica ($api_host)"
[[ -z $(sql "SELECT 1 FROM sync_job WHERE trigger = 'scheduled' AND worker NOT LIKE '$worker_host:%'") ]] ||
    fail "a scheduled job ran outside the worker"

echo "=== down"
"${compose[@]}" down -v >/dev/null 2>&1
ok "removed"
echo "compose-check: passed"
