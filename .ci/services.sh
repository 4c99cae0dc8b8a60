#!/usr/bin/env bash
# CI services: the PostgreSQL server binaries (initdb, pg_ctl) that tests/scaleout/ uses to start
# a throwaway database server of its own. Installs Debian's package only if they are missing;
# starts nothing (the tests start and stop their server themselves).
set -euo pipefail

have_pg() {
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1
}

if have_pg; then
    echo "services: PostgreSQL binaries present"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq postgresql
have_pg && echo "services: PostgreSQL installed"
