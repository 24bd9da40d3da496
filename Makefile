# Two commands: `make demo` runs the portal with demo data; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e ".[dev]"
	touch $@

venv: $(VENV)/.installed-dev

demo: $(VENV)/.installed-dev
	mkdir -p var
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_users
	$(BIN)/python manage.py demo_registry
	$(BIN)/python manage.py demo_training
	$(BIN)/python manage.py demo_reviews
	$(BIN)/python manage.py demo_datasubjects
	$(BIN)/python manage.py demo_monitoring
	@# Prometheus and Alertmanager join the demo when their binaries are on the PATH.
	@if command -v prometheus >/dev/null && { command -v alertmanager || command -v prometheus-alertmanager; } >/dev/null; then \
		cat Procfile.demo Procfile.monitoring > var/Procfile; \
		echo "Prometheus: http://127.0.0.1:9090  Alertmanager: http://127.0.0.1:9093"; \
	else \
		cp Procfile.demo var/Procfile; \
		echo "Prometheus and Alertmanager are not installed (apt-get install prometheus prometheus-alertmanager): the monitoring pages show the stored figures."; \
	fi
	@echo ""
	@echo "Portal:  http://127.0.0.1:8000  (Ctrl-C stops the web server and the worker)"
	@echo ""
	@# Ctrl-C is how the demo stops: not an error.
	@trap 'stopped=1' INT; $(BIN)/honcho -f var/Procfile -d . start; status=$$?; \
		if [ -n "$$stopped" ] || [ $$status -eq 130 ]; then echo "Demo stopped."; else exit $$status; fi

# PostgreSQL is used when DATABASE_URL is set or one answers on 127.0.0.1:5432;
# otherwise SQLite, and the PostgreSQL-only tests are skipped with their reason shown.
test: $(VENV)/.installed-dev
	DATABASE_URL="$${DATABASE_URL:-$$($(BIN)/python -m portal.testsupport.database_url)}" \
	$(BIN)/pytest $(PYTEST_ARGS)

# lint-imports checks the layers written down in docs/architecture.md.
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/bandit -c pyproject.toml -r . -q

clean:
	rm -rf var $(VENV)
