#!/usr/bin/env bash
# CI services: the PostgreSQL server binaries (initdb, pg_ctl) that tests/scaleout/ uses to start
# a throwaway database server of its own, and Debian's chromium, the headless browser that
# tests/test_dashboard.py opens optuna-dashboard in. Installs Debian's packages only for what is
# missing; starts nothing (the tests start and stop their server themselves).
set -euo pipefail

have_pg() {
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1
}

have_chromium() {
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

packages=()
if have_pg; then echo "services: PostgreSQL binaries present"; else packages+=(postgresql); fi
if have_chromium; then echo "services: chromium present"; else packages+=(chromium); fi
if [ "${#packages[@]}" -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
have_pg && echo "services: PostgreSQL installed"
have_chromium && echo "services: chromium installed"
