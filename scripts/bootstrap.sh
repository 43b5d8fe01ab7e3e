#!/usr/bin/env bash
# Install what a fresh machine lacks for `make run` / `make test`: uv, the Python environment
# (from uv.lock; kubectl comes with it), promtool, and make sure RabbitMQ is running.
# Idempotent; quick when all is there.
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

# promtool checks and unit-tests the Prometheus alert rules (tests/unit/test_observability.py).
# It comes from Debian's prometheus package, unpacked into var/tools rather than installed, so
# no Prometheus server is set up or started.
PROMTOOL=var/tools/bin/promtool
if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$PROMTOOL" ]; then
  if command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
    echo "bootstrap: unpacking promtool from Debian's prometheus package into var/tools" >&2
    work="$(mktemp -d)"
    if ! (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1); then
      [ "$(id -u)" = "0" ] && apt-get update -q >/dev/null
      (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1) || true
    fi
    if ls "$work"/prometheus_*.deb >/dev/null 2>&1; then
      dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
      mkdir -p "$(dirname "$PROMTOOL")"
      cp "$work/root/usr/bin/promtool" "$PROMTOOL"
    else
      echo "bootstrap: could not download Debian's prometheus package; the alert rule" >&2
      echo "           tests will be skipped (CI fails them)" >&2
    fi
    rm -rf "$work"
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
