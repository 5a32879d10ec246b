#!/usr/bin/env bash
# Build the image and prove it with real containers (podman, host network):
#   1. build (BASE_IMAGE; garmin-sync-base:bookworm is made from Debian's packages if missing)
#   2. `migrate` and then `serve` on SQLite in a named volume; the HEALTHCHECK turns healthy
#   3. the process runs as uid 10001 and cannot write outside /data
#   4. login against the Garmin sandbox (run on the host) and a sync, from inside the container
#   5. `podman stop` (SIGTERM) ends it with exit code 0 within the grace period
#   6. a new container on the same volume still has the session (VALID) and the activities
#   7. the same image on the host's PostgreSQL: migrate, serve, login, sync
#   8. the image's size
# Every step prints what it checks; the first failure ends the run with exit code 1.
# Not part of CI (it needs root, podman and a few minutes). `make image-check` runs it.
#
# Environment: IMAGE (garmin-sync:check), BASE_IMAGE (garmin-sync-base:bookworm),
# IMAGE_CHECK_DATABASE_URL (postgres://postgres@127.0.0.1:5432/garmin_sync_image_check: that
# database is dropped and created again), PIP_CA (a CA bundle handed to pip as a build secret,
# default /etc/ssl/certs/ca-certificates.crt when present), CONTAINERS_CONF
# (deploy/containers.conf).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-garmin-sync:check}
BASE_IMAGE=${BASE_IMAGE:-garmin-sync-base:bookworm}
PG_URL=${IMAGE_CHECK_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/garmin_sync_image_check}
PIP_CA=${PIP_CA:-/etc/ssl/certs/ca-certificates.crt}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/containers.conf}
VENV=${VENV:-.venv}
KEY=image-check-key-0123456789abcdef
PREFIX=gs-check
VOLUME=$PREFIX-data
GRACE=30
# every migration the image carries must be applied to a fresh database
MIGRATIONS=$(find migrations/models -name '[0-9]*_*.py' | wc -l)

scratch=$(mktemp -d)
sandbox_pid=
step_no=0

step() { step_no=$((step_no + 1)); printf '\n=== %d. %s\n' "$step_no" "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
fail() {
    printf '\nFAIL: %s\n' "$*" >&2
    exit 1
}
# podman without the lines it prints on machines where systemd is not init (no timers for
# healthchecks: this script runs them itself with `podman healthcheck run`)
pm() { podman "$@" 2> >(grep -v 'systemd connection' >&2); }

cleanup() {
    local status=$?
    if ((status != 0)); then
        for name in $(podman ps -a --format '{{.Names}}' --filter "name=^$PREFIX-"); do
            echo "--- last log lines of $name" >&2
            podman logs --tail 20 "$name" >&2 || true
        done
    fi
    podman ps -a --format '{{.Names}}' --filter "name=^$PREFIX-" |
        xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
    podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
    if [[ -n $sandbox_pid ]]; then
        kill "$sandbox_pid" 2>/dev/null || true
        wait "$sandbox_pid" 2>/dev/null || true
    fi
    rm -rf "$scratch"
    ((status == 0)) || echo "image-check: FAILED at step $step_no" >&2
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# api METHOD PATH USER [BODY]: the HTTP status on stdout, the body in $scratch/body
api() {
    local args=(-sS -o "$scratch/body" -w '%{http_code}' -X "$1"
        -H "Authorization: Bearer $KEY" -H "X-User-Id: $3")
    if [[ -n ${4:-} ]]; then
        args+=(-H 'Content-Type: application/json' -d "$4")
    fi
    curl "${args[@]}" "http://127.0.0.1:$api_port$2"
}
# body EXPR: a Python expression over the last answer's JSON `d`
body() { python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print($1)" "$scratch/body"; }
expect() {  # expect CODE METHOD PATH USER [BODY]
    local want=$1 got
    shift
    got=$(api "$@")
    [[ $got == "$want" ]] || fail "$1 $2 answered $got, expected $want: $(cat "$scratch/body")"
}

wait_healthy() {  # the image's own HEALTHCHECK, run until it passes (60 s at most)
    local name=$1 i
    for i in $(seq 60); do
        if [[ $(podman inspect --format '{{.State.Status}}' "$name") != running ]]; then
            fail "$name stopped: $(podman inspect --format '{{.State.ExitCode}}' "$name")"
        fi
        if pm healthcheck run "$name" >/dev/null; then
            ok "$name: healthcheck passed after ~${i}s, status" \
               "$(podman inspect --format '{{.State.Health.Status}}' "$name")"
            return 0
        fi
        sleep 1
    done
    fail "$name did not turn healthy within 60 s"
}

serve() {  # serve NAME [podman run options]: the image's default command, detached
    local name=$1
    shift
    pm run -d --name "$name" --network host --read-only --read-only-tmpfs=false \
        -e GARMIN_SYNC_HTTP_PORT="$api_port" \
        -e GARMIN_SYNC_GARMIN_BASE_URL="http://127.0.0.1:$sandbox_port" \
        -e GARMIN_SYNC_GARMIN_OAUTH_CONSUMER_KEY=sandbox-consumer-key \
        -e GARMIN_SYNC_GARMIN_OAUTH_CONSUMER_SECRET=sandbox-consumer-secret \
        -e GARMIN_SYNC_AUTH_API_KEYS="$KEY" \
        "$@" "$IMAGE" >/dev/null
    ok "$name started (read-only root file system, no tmpfs; port $api_port)"
}

login_and_sync() {  # login_and_sync USER: login, a sync of both kinds, poll jobs to SUCCESS
    local user=$1 ids i states
    expect 200 POST /api/v1/garmin/session/login "$user" \
        '{"username": "alice@example.com", "password": "alice-sandbox-pw"}'
    [[ $(body 'd["status"]') == SUCCESS ]] || fail "login: $(cat "$scratch/body")"
    ok "POST login as $user: SUCCESS"
    expect 202 POST /api/v1/garmin/sync "$user" '{"kinds": ["activities", "health"]}'
    ids=$(body '" ".join(str(job["id"]) for job in d["jobs"])')
    ok "POST /api/v1/garmin/sync: 202, jobs $ids"
    for i in $(seq 60); do
        expect 200 GET "/api/v1/garmin/sync/jobs?limit=50" "$user"
        states=$(body "' '.join(f'{j[\"id\"]}:{j[\"kind\"]}:{j[\"status\"]}' for j in d['items'] if str(j['id']) in '$ids'.split())")
        if [[ $states == *FAILED* ]]; then
            fail "a sync job failed: $(cat "$scratch/body")"
        fi
        if [[ -n $states && $states != *RUNNING* && $states != *QUEUED* && $states != *PENDING* ]] &&
            [[ $(wc -w <<<"$states") == $(wc -w <<<"$ids") ]]; then
            ok "jobs after ~${i}s: $states"
            break
        fi
        ((i < 60)) || fail "jobs not finished within 60 s: $states"
        sleep 1
    done
    expect 200 GET "/api/v1/garmin/activities?limit=500" "$user"
    activities=$(body 'len(d["items"])')
    ((activities > 0)) || fail "no activities after the sync"
    ok "GET activities: $activities"
}

# --- 1 ---------------------------------------------------------------------------------
step "build $IMAGE (base $BASE_IMAGE)"
podman --version
if ! podman image exists "$BASE_IMAGE"; then
    [[ $BASE_IMAGE == garmin-sync-base:* ]] || fail "base image $BASE_IMAGE not found"
    deploy/make-base-image.sh "$BASE_IMAGE"
fi
build=(build --format docker --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE")
if [[ -s $PIP_CA ]]; then
    build+=(--secret "id=pip-ca,src=$PIP_CA")
fi
podman "${build[@]}" . >"$scratch/build.log" 2>&1 || {
    tail -30 "$scratch/build.log"
    fail "podman build failed"
}
ok "built $(podman image inspect --format '{{.Id}}' "$IMAGE" | cut -c1-12)"
[[ $(podman image inspect --format '{{.User}}' "$IMAGE") == 10001:10001 ]] ||
    fail "the image's user is not 10001:10001"
healthcheck=$(podman image inspect "$IMAGE" |
    python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)[0]["Healthcheck"]["Test"]))')
[[ $healthcheck == *readyz* ]] || fail "the image has no HEALTHCHECK on /readyz: $healthcheck"
ok "image user $(podman image inspect --format '{{.User}}' "$IMAGE"), healthcheck:" \
   "$(cut -c1-70 <<<"$healthcheck")..."

# --- 2 ---------------------------------------------------------------------------------
step "migrate, then serve, on SQLite in volume $VOLUME; the sandbox on the host"
api_port=$(free_port)
sandbox_port=$(free_port)
[[ -x $VENV/bin/garmin-sync ]] || fail "$VENV/bin/garmin-sync missing: run make image-check"
"$VENV/bin/garmin-sync" sandbox --port "$sandbox_port" --seed examples/sandbox-seed.yaml \
    >"$scratch/sandbox.log" 2>&1 &
sandbox_pid=$!
for i in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$sandbox_port/" && break
    ((i < 50)) || fail "the sandbox did not answer on port $sandbox_port"
    sleep 0.2
done
ok "sandbox on 127.0.0.1:$sandbox_port (pid $sandbox_pid)"
podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
pm volume create "$VOLUME" >/dev/null
out=$(pm run --rm --network host -v "$VOLUME:/data" "$IMAGE" garmin-sync migrate)
echo "    $out"
[[ $out == "applied $MIGRATIONS migration(s)"* ]] || fail "migrate did not apply the migrations"
ok "garmin-sync migrate in a one-shot container"
serve $PREFIX-sqlite -v "$VOLUME:/data"
wait_healthy $PREFIX-sqlite

# --- 3 ---------------------------------------------------------------------------------
step "runs as the non-root uid; writes only to /data"
podman top $PREFIX-sqlite user huser pid args | sed 's/^/    /'
uid=$(podman exec $PREFIX-sqlite python -c 'import os; print(os.stat("/proc/1").st_uid)')
[[ $uid == 10001 ]] || fail "PID 1 runs as uid $uid"
ok "PID 1 (garmin-sync serve) runs as uid $uid"
for dir in / /app /app/migrations /opt/garmin-sync/lib /etc /usr /var /tmp /var/tmp /run; do
    if podman exec $PREFIX-sqlite sh -c "touch $dir/.image-check" 2>/dev/null; then
        fail "$dir is writable in the serving container"
    fi
done
ok "/ /app /app/migrations /opt/garmin-sync/lib /etc /usr /var /tmp /var/tmp /run: not writable"
podman exec $PREFIX-sqlite sh -c 'touch /data/.image-check && rm /data/.image-check' ||
    fail "/data is not writable"
ok "/data is writable: $(podman exec $PREFIX-sqlite ls -A /data | tr '\n' ' ')"
# without --read-only too: the uid alone keeps the image's own files safe (only the world-
# writable /tmp and /var/tmp of any Debian image remain, which --read-only closes)
writable=$(pm run --rm --network host "$IMAGE" sh -c \
    'for d in / /app /app/migrations /opt/garmin-sync/lib /etc /usr /var; do
         touch "$d/.x" 2>/dev/null && echo "$d"; done; true')
[[ -z $writable ]] || fail "writable without --read-only: $writable"
ok "without --read-only, as uid 10001: / /app /opt/garmin-sync/lib /etc /usr /var not writable"

# --- 4 ---------------------------------------------------------------------------------
step "login against the sandbox and a sync, from inside the container"
login_and_sync u-1
synced=$activities
expect 200 GET /api/v1/garmin/session/status u-1
[[ $(body 'd["status"]') == VALID ]] || fail "status: $(cat "$scratch/body")"
ok "GET status: VALID"
requests=$(curl -s "http://127.0.0.1:$sandbox_port/_sandbox/requests" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
ok "the sandbox saw $requests requests"

# --- 5 ---------------------------------------------------------------------------------
step "podman stop (SIGTERM) ends it with exit code 0 within ${GRACE}s"
start=$(date +%s.%N)
pm stop -t "$GRACE" $PREFIX-sqlite >/dev/null
elapsed=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" \
    "$start" "$(date +%s.%N)")
code=$(podman inspect --format '{{.State.ExitCode}}' $PREFIX-sqlite)
[[ $code == 0 ]] || fail "exit code $code after SIGTERM"
python3 -c "import sys; sys.exit(float(sys.argv[1]) >= $GRACE)" "$elapsed" ||
    fail "stop took ${elapsed}s: killed at the end of the grace period"
ok "stopped in ${elapsed}s, exit code $code"
podman logs --tail 3 $PREFIX-sqlite | cut -c1-160 | sed 's/^/    /'

# --- 6 ---------------------------------------------------------------------------------
step "a new container on the same volume keeps the session and the data"
pm rm $PREFIX-sqlite >/dev/null
ok "container removed; volume $VOLUME kept"
serve $PREFIX-sqlite2 -v "$VOLUME:/data"
wait_healthy $PREFIX-sqlite2
expect 200 "GET" "/api/v1/garmin/session/status?refresh=true" u-1
[[ $(body 'd["status"]') == VALID ]] || fail "status after recreate: $(cat "$scratch/body")"
ok "GET status?refresh=true: $(body 'd["status"], d["checked"]')"
expect 200 GET "/api/v1/garmin/activities?limit=500" u-1
[[ $(body 'len(d["items"])') == "$synced" ]] ||
    fail "activities after recreate: $(body 'len(d["items"])'), before: $synced"
ok "GET activities: $synced, as before"
pm stop -t "$GRACE" $PREFIX-sqlite2 >/dev/null
ok "stopped, exit code $(podman inspect --format '{{.State.ExitCode}}' $PREFIX-sqlite2)"

# --- 7 ---------------------------------------------------------------------------------
step "the same image on PostgreSQL (${PG_URL##*@})"
db=${PG_URL##*/}
export PGOPTIONS="-c client_min_messages=warning"
psql "${PG_URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null
psql "${PG_URL%/*}/postgres" -qc "CREATE DATABASE \"$db\"" >/dev/null
ok "database $db created empty"
secret=$(pm run --rm --network host "$IMAGE" garmin-sync generate-key)
pg=(-e "GARMIN_SYNC_DATABASE_URL=$PG_URL" -e "GARMIN_SYNC_SECURITY_ENCRYPTION_KEYS=$secret")
out=$(pm run --rm --network host "${pg[@]}" "$IMAGE" garmin-sync migrate)
echo "    $out"
[[ $out == "applied $MIGRATIONS migration(s)"* ]] || fail "migrate on PostgreSQL"
ok "migrate on PostgreSQL"
serve $PREFIX-pg "${pg[@]}"
wait_healthy $PREFIX-pg
login_and_sync u-pg
tables=$(psql "$PG_URL" -Atc "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
ok "$tables tables in $db"
pm stop -t "$GRACE" $PREFIX-pg >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' $PREFIX-pg)
[[ $code == 0 ]] || fail "exit code $code after SIGTERM on PostgreSQL"
ok "stopped, exit code $code"

# --- 8 ---------------------------------------------------------------------------------
step "image size"
podman images --filter "reference=$IMAGE" --filter "reference=$BASE_IMAGE" |
    sed 's/^/    /'
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
base=$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE")
ok "$IMAGE: $((size / 1000000)) MB, of which the base $((base / 1000000)) MB"

printf '\nimage-check: all %d steps passed\n' "$step_no"
