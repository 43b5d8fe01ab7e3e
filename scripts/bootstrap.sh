#!/usr/bin/env bash
# Install what a fresh machine lacks for `make run` / `make test`: uv, the Python environment
# (from uv.lock), and make sure RabbitMQ is running. Idempotent; quick when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9

if ! command -v uv >/dev/null 2>&1; then
  echo "bootstrap: installing uv ${UV_VERSION}" >&2
  python3 -m pip install --quiet "uv==${UV_VERSION}"
fi

uv sync --all-packages --frozen --quiet

# The console's charting library, from npm by its lock file (never copied into the repository).
# Without node the console still works, minus its charts.
CONSOLE=services/reports/console
if [ ! -f "$CONSOLE/node_modules/.package-lock.json" ] \
    || [ "$CONSOLE/package-lock.json" -nt "$CONSOLE/node_modules/.package-lock.json" ]; then
  if ! command -v npm >/dev/null 2>&1 && [ "${CI:-}" = "true" ] && [ "$(id -u)" = "0" ]; then
    echo "bootstrap: installing nodejs and npm (CI)" >&2
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
  fi
  if command -v npm >/dev/null 2>&1; then
    echo "bootstrap: npm ci (console charts)" >&2
    (cd "$CONSOLE" && npm ci --no-audit --no-fund --silent)
  else
    echo "bootstrap: npm is not installed: the console will show tables without charts" >&2
  fi
fi

if [ "${POSTLINE_SKIP_RABBITMQ:-}" != "1" ]; then
  if ! command -v rabbitmqctl >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ] && [ "$(id -u)" = "0" ]; then
      echo "bootstrap: installing rabbitmq-server (CI)" >&2
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server
    else
      echo "bootstrap: RabbitMQ is not installed. Install it (Debian: apt-get install rabbitmq-server)" >&2
      echo "           or point POSTLINE_AMQP_URL at a running broker." >&2
      exit 1
    fi
  fi
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    echo "bootstrap: starting RabbitMQ (rabbitmq-server -detached)" >&2
    rabbitmq-server -detached
    rabbitmqctl -q await_startup --timeout 120
    rabbitmqctl -q status >/dev/null
  fi
fi
