.PHONY: run test lint worker
run:  ## install, migrate, load demo data and serve on http://127.0.0.1:8000
	scripts/run.sh
test:  ## run the whole test suite
	scripts/test.sh
lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
worker:  ## a Celery worker (production mode: needs CELERY_BROKER_URL)
	.venv/bin/celery -A tessera worker --loglevel INFO
