#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, then every test, the moto
# ones included. Installs moto into .venv first when it is not there.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "$venv/bin/moto_server" ]; then
  echo "installing moto into $venv (one time)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "moto[server]"
fi
export IDRIFT_MOTO_SERVER="$PWD/$venv/bin/moto_server"

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
