#!/usr/bin/env bash
# Run Tessera on its embedded default: SQLite, in-memory channel layer, Celery eager, demo data,
# one ASGI process (HTTP + websockets) on http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
mkdir -p var
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py load_demo
.venv/bin/python manage.py collectstatic --noinput --verbosity 0
echo "Tessera is running on http://127.0.0.1:${PORT:-8000}/ (Ctrl+C to stop)"
exec .venv/bin/daphne -b "${HOST:-127.0.0.1}" -p "${PORT:-8000}" tessera.asgi:application
