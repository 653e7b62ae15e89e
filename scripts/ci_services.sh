#!/usr/bin/env bash
# Run the suite against the production stack: PostgreSQL, Redis (cache, channel layer, Celery
# broker and results) and a separate Celery worker process. Starts the services when they are
# installed but stopped, and installs them from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "Starting PostgreSQL"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "Starting Redis"
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do redis-cli ping >/dev/null 2>&1 && break; sleep 1; done
fi

PGUSER=${PGUSER:-postgres}
DB=tessera_ci
# Trust auth on the local socket (as on the dev/CI machines); create the role and database.
psql_admin() { $SUDO -u postgres psql -v ON_ERROR_STOP=1 -q "$@" 2>/dev/null || psql -U postgres -h 127.0.0.1 -v ON_ERROR_STOP=1 -q "$@"; }
psql_admin -d postgres -c "SELECT 1" >/dev/null
psql_admin -d postgres -tc "SELECT 1 FROM pg_roles WHERE rolname='tessera'" | grep -q 1 \
  || psql_admin -d postgres -c "CREATE ROLE tessera LOGIN SUPERUSER PASSWORD 'tessera'"
psql_admin -d postgres -tc "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1 \
  || psql_admin -d postgres -c "CREATE DATABASE $DB OWNER tessera"

export DATABASE_URL="postgres://tessera:tessera@127.0.0.1:5432/$DB"
export REDIS_URL="redis://127.0.0.1:6379/5"
export CELERY_BROKER_URL="redis://127.0.0.1:6379/6"
export CELERY_RESULT_BACKEND="redis://127.0.0.1:6379/7"
export SECRET_KEY="ci-only-$(head -c 48 /dev/urandom | base64 | tr -d '/+=' )"
export ALLOWED_HOSTS="127.0.0.1,localhost,testserver"
export TESSERA_REAL_SERVICES=1
# 5-7 as above; 10-15 are the test processes' own cache databases (tests/conftest.py).
for db in 5 6 7 10 11 12 13 14 15; do redis-cli -n "$db" flushdb >/dev/null; done

.venv/bin/python manage.py migrate --noinput -v0
.venv/bin/python manage.py check --deploy --fail-level WARNING
# The live-server browser tests speak plain HTTP on loopback (no TLS proxy in CI).
export SECURE_SSL_REDIRECT=false SESSION_COOKIE_SECURE=false CSRF_COOKIE_SECURE=false

mkdir -p artifacts
.venv/bin/celery -A tessera worker --loglevel INFO --concurrency 1 --hostname "ci@%h" \
  > artifacts/celery-worker.log 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true; wait $WORKER 2>/dev/null || true' EXIT
for _ in $(seq 60); do
  .venv/bin/celery -A tessera inspect ping --timeout 1 >/dev/null 2>&1 && break
  kill -0 $WORKER || { cat artifacts/celery-worker.log; exit 1; }
  sleep 1
done

.venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile -p no:cacheprovider
