# The two set-up commands of the README, and a few more for developers.
.PHONY: run test test-fast lint bench

run:  ## set up, then serve on http://127.0.0.1:8000 (embedded PostgreSQL + sample data)
	./scripts/setup
	.venv/bin/audit-timeline serve --demo

test:  ## set up (incl. chromium, Maven, Go, test tools), then run the whole test suite
	./scripts/setup --test
	.venv/bin/python -m pytest

test-fast:  ## everything but the browser, Elasticsearch and Go webhook-client tests
	./scripts/setup --test
	.venv/bin/python -m pytest -m "not browser and not es and not webhook_client"

lint:  ## ruff (lint + format) and mypy --strict on app/
	./scripts/setup --test
	.venv/bin/ruff check app tests bench migrations
	.venv/bin/ruff format --check app tests bench migrations
	.venv/bin/mypy

bench:  ## benchmarks; each prints its figures
	./scripts/setup --test
	.venv/bin/python bench/ingest_throughput.py
