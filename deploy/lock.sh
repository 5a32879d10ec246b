#!/usr/bin/env bash
# Compile the locks under requirements/ from pyproject.toml with `uv pip compile`:
#   build.txt    the build backend (pyproject's [build-system] requires)
#   runtime.txt  [project] dependencies
#   test.txt     the `test` extra, the runtime pins as constraints (a superset of runtime)
#   <extra>.txt  every other extra (a `bench` one, say), constrained by runtime and test, so
#                it installs into the test venv without moving a pin
#   tools.txt    uv itself, from tools.in
# Every pin carries the hashes of all its files on PyPI. The target is CPython 3.11 on
# Linux x86_64, whatever machine compiles.
#
# deploy/lock.sh [uv options]   rewrite the locks; existing pins are kept unless pyproject.toml
#                               needs otherwise (pass --upgrade or -P NAME to move them);
#                               the lock of an extra no longer declared is removed
# deploy/lock.sh --check        compile into a scratch copy and fail when it differs from the
#                               committed locks (pyproject.toml and the lock disagree)
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-$PWD/.venv-tools/bin/uv}
TARGET=(--python-version 3.11 --python-platform x86_64-unknown-linux-gnu)

compile() {  # compile SRC OUT [options]: run where pyproject.toml and requirements/ are
    local src=$1 out=$2
    shift 2
    "$UV" pip compile --quiet "${TARGET[@]}" --generate-hashes \
        --custom-compile-command "make lock" --output-file "$out" "$src" "$@"
}

build_requires() {
    "$PYTHON" -c 'import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))'
}

extras() {  # the extras other than test, one a line
    "$PYTHON" -c 'import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(sorted(set(project.get("optional-dependencies", {})) - {"test"})))'
}

lock_in() {  # lock_in DIR [uv options]: (re)write DIR/requirements/*.txt
    local dir=$1
    shift
    (
        cd "$dir"
        build_requires | compile - requirements/build.txt "$@"
        compile pyproject.toml requirements/runtime.txt "$@"
        compile pyproject.toml requirements/test.txt --extra test \
            --constraint requirements/runtime.txt "$@"
        local expected=(build runtime test tools) extra lock name
        for extra in $(extras); do
            compile pyproject.toml "requirements/$extra.txt" --extra "$extra" \
                --constraint requirements/runtime.txt --constraint requirements/test.txt "$@"
            expected+=("$extra")
        done
        compile requirements/tools.in requirements/tools.txt "$@"
        for lock in requirements/*.txt; do
            name=$(basename "$lock" .txt)
            if [[ " ${expected[*]} " != *" $name "* ]]; then
                rm "$lock"
            fi
        done
    )
}

PYTHON=${PYTHON:-python3}
PYTHON=$(command -v "$PYTHON")
if [[ ${1:-} == --check ]]; then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    cp pyproject.toml "$scratch/"
    cp -r requirements "$scratch/"
    lock_in "$scratch"
    if ! diff -ru requirements "$scratch/requirements"; then
        echo "lock-check: requirements/ does not match pyproject.toml; run 'make lock' and" \
             "commit the result" >&2
        exit 1
    fi
    echo "lock-check: requirements/ matches pyproject.toml"
else
    lock_in . "$@"
fi
