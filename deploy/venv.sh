#!/usr/bin/env bash
# deploy/venv.sh VENV LOCK [--project]: make VENV hold exactly what LOCK pins (hashes
# required), then, with --project, garmin-sync itself (editable, no dependencies of its own).
#
# Several `make` targets may start at once (make run in one terminal, make test in another):
# an exclusive lock on VENV.lock serialises them, and whoever waited finds the work done.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${1:?usage: deploy/venv.sh VENV LOCK [--project]}
lock=${2:?usage: deploy/venv.sh VENV LOCK [--project]}
project=${3:-}
python=${PYTHON:-python3}
stamp="$venv/.installed-$(basename "$lock" .txt)"
inputs=("$lock")
if [[ $project == --project ]]; then
    inputs+=(requirements/build.txt pyproject.toml)
fi

up_to_date() {
    [[ -f $stamp ]] || return 1
    local input
    for input in "${inputs[@]}"; do
        [[ $stamp -nt $input ]] || return 1
    done
}

exec 9>"${venv%/}.lock"
if ! flock --nonblock 9; then
    echo "waiting for another make to finish with $venv ..."
    flock 9
fi
if up_to_date; then
    exit 0
fi

if [[ ! -x $venv/bin/python ]]; then
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "garmin-sync needs Python >= 3.11 (found $("$python" --version 2>&1))" >&2
        exit 1
    fi
    if ! "$python" -m venv "$venv"; then
        rm -rf "$venv"
        echo "cannot create a virtualenv in $venv with $python (the error is above;" \
             "on Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
fi

pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --require-hashes --requirement "$lock"
if [[ $project == --project ]]; then
    # the build backend comes from its own hashed lock, so nothing unpinned is fetched
    "${pip[@]}" --require-hashes --requirement requirements/build.txt
    "${pip[@]}" --no-deps --no-build-isolation --editable .
fi
touch "$stamp"
