#!/usr/bin/env bash
# Run a command (the test suite) with a Docker engine for the sandbox's Docker tests.
# Used by `make test` (and so by CI): `tools/with-docker.sh COMMAND...`.
#
# Before that, it tries to give the sandbox's Docker tests a real engine: as root it
# installs docker.io and debootstrap (Debian packages) when missing, starts dockerd
# without touching the host's network (no iptables, no bridge: sandbox containers run
# with --network none anyway), and builds the sandbox image locally (debootstrap +
# docker import; no registry). Every step may fail without failing CI: the tests then
# run anyway and the Docker tests skip, saying why (DSX_DOCKER_UNAVAILABLE).
set -uo pipefail
cd "$(dirname "$0")/.."

LOG_DIR="$(mktemp -d -t dsx-ci-XXXXXX)"
DOCKERD_PID=""

cleanup() {
    if [ -n "$DOCKERD_PID" ]; then
        # Remove what the tests may have left, then stop the engine we started.
        docker ps -aq --filter label=dsx.sandbox=1 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
        kill "$DOCKERD_PID" 2>/dev/null || true
        wait "$DOCKERD_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

docker_unavailable() {
    export DSX_DOCKER_UNAVAILABLE="CI could not provide Docker: $1"
    echo "ci: $DSX_DOCKER_UNAVAILABLE (the Docker sandbox tests will skip)" >&2
    return 1
}

engine_up() {
    timeout 10 docker info >/dev/null 2>&1
}

start_docker() {
    if [ "$(id -u)" != 0 ]; then
        command -v docker >/dev/null && engine_up && return 0
        docker_unavailable "not root, and no running engine" || return 1
    fi
    if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
        echo "ci: installing docker.io and debootstrap"
        if ! { timeout 300 apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq docker.io debootstrap; } \
            >"$LOG_DIR/apt.log" 2>&1; then
            docker_unavailable "apt-get install docker.io debootstrap failed: $(tail -n 3 "$LOG_DIR/apt.log" | tr '\n' ' ')" || return 1
        fi
    fi
    if engine_up; then
        echo "ci: using the Docker engine that is already running"
        return 0
    fi
    echo "ci: starting dockerd"
    dockerd --iptables=false --ip-masq=false --bridge=none >"$LOG_DIR/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 60); do
        engine_up && return 0
        if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            DOCKERD_PID=""
            docker_unavailable "dockerd exited: $(tail -n 3 "$LOG_DIR/dockerd.log" | tr '\n' ' ')" || return 1
        fi
        sleep 1
    done
    docker_unavailable "dockerd did not answer within 60 s: $(tail -n 3 "$LOG_DIR/dockerd.log" | tr '\n' ' ')"
}

build_sandbox_image() {
    if .venv/bin/python -m dsx.sandbox.cli check >"$LOG_DIR/check.log" 2>&1; then
        if grep -q '^docker: ok' "$LOG_DIR/check.log"; then
            echo "ci: the sandbox image is present"
            return 0
        fi
    fi
    echo "ci: building the sandbox image (debootstrap, about a minute)"
    if ! timeout 1200 .venv/bin/python -m dsx.sandbox.cli build-image >"$LOG_DIR/build-image.log" 2>&1; then
        docker_unavailable "dsx sandbox build-image failed: $(tail -n 5 "$LOG_DIR/build-image.log" | tr '\n' ' ')" || return 1
    fi
    tail -n 1 "$LOG_DIR/build-image.log"
}

if [ "${DSX_NO_DOCKER:-}" = 1 ]; then
    export DSX_DOCKER_UNAVAILABLE="DSX_NO_DOCKER=1 was set"
elif start_docker; then
    build_sandbox_image || true
fi

"$@"
