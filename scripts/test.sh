#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, then every test, the moto
# ones included. Installs moto, and the JSON Schema validator with the OCSF
# schema that the report format tests use, into .venv when they are not there.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "$venv/bin/moto_server" ]; then
  echo "installing moto into $venv (one time)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "moto[server]"
fi
if ! "$venv/bin/python" -c "import jsonschema, ocsf_json_schema" 2>/dev/null; then
  echo "installing jsonschema and ocsf-json-schema into $venv (one time)" >&2
  "$venv/bin/pip" install --quiet "jsonschema>=4.18" "ocsf-json-schema==1.2.0"
fi
export IDRIFT_MOTO_SERVER="$PWD/$venv/bin/moto_server"
export IDRIFT_PYTHON="$PWD/$venv/bin/python"

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
