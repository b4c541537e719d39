# Two commands a newcomer needs: `make run` and `make test`. Everything else is for developers and CI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint format bench soak clean system-deps help screenshots browser-deps compilemessages messages

help:
	@echo "make run    - install, migrate, load demo data, serve on http://$(HOST):$(PORT) (SQLite, demo data, DEBUG on)"
	@echo "make test   - install test tools and run the whole suite in parallel (SQLite, or MySQL/MariaDB via DATABASE_URL); writes coverage.xml"
	@echo "make lint   - ruff check and format check, bandit, pip-audit over the pinned requirements"
	@echo "make screenshots - the README's pictures of the screens (docs/screens/), from the browser test of a restaurant's day"
	@echo "make bench  - throughput of the lunch-rush paths as ratios to /healthz (gunicorn, MariaDB, wrk): docs/benchmarks.md"
	@echo "make soak   - the benchmark's journey mix for SOAK_SECONDS (600): zero errors, worker and web memory flat (not in CI)"
	@echo "make messages - update the translation catalogues (locale/) from the code and compile them"

# mysqlclient compiles against the MySQL/MariaDB client headers, and the translations need msgfmt (gettext);
# install them if this machine lacks them.
system-deps:
	@bash scripts/ensure-system-deps.sh

# The translations (locale/<language>/LC_MESSAGES/*.po) compiled to the .mo files Django reads: git ignores the
# .mo, make run and make test compile them (an up-to-date one is skipped), the image at build time.
compilemessages: | $(VENV)/.runtime-installed
	@command -v msgfmt >/dev/null 2>&1 || $(MAKE) --no-print-directory system-deps
	DEBUG=true $(BIN)/python manage.py compilemessages -v 0 --ignore=.venv --ignore=staticfiles

# After changing words in the code or the templates: the catalogues get the new messages (translate them, then
# no msgstr may stay empty: tests/test_i18n.py), and are compiled.
messages: | $(VENV)/.runtime-installed
	DEBUG=true $(BIN)/python manage.py makemessages -l pt_BR -d django --ignore=.venv --ignore=staticfiles --ignore=tests
	DEBUG=true $(BIN)/python manage.py makemessages -l pt_BR -d djangojs --ignore=.venv --ignore=staticfiles --ignore=tests
	@$(MAKE) --no-print-directory compilemessages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	@$(MAKE) --no-print-directory system-deps
	$(BIN)/pip install -q -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	@$(MAKE) --no-print-directory system-deps
	$(BIN)/pip install -q -r requirements-dev.txt
	@touch $@ $(VENV)/.runtime-installed

run: export DEBUG ?= true
# Where the simulator's QR pay page and notifications point; 0.0.0.0 is no address to call back.
run: export SITE_URL ?= http://$(if $(filter 0.0.0.0,$(HOST)),127.0.0.1,$(HOST)):$(PORT)
run: $(VENV)/.runtime-installed .env compilemessages
	$(BIN)/python manage.py migrate --no-input -v 0
	$(BIN)/python manage.py seed_demo
	@echo ""
	@echo "  Kiosk back end on http://$(HOST):$(PORT)/"
	@echo "    Admin (back office):  http://$(HOST):$(PORT)/admin/      admin/admin, manager1/manager1"
	@echo "    API docs (Swagger):   http://$(HOST):$(PORT)/api/docs/"
	@echo "    OpenAPI schema:       http://$(HOST):$(PORT)/api/schema/"
	@echo "    Screens (pt-BR):      kiosk http://$(HOST):$(PORT)/kiosk/ (kiosk1)   kitchen http://$(HOST):$(PORT)/kitchen/ (kitchen1)"
	@echo "                          counter http://$(HOST):$(PORT)/counter/ (cashier1)   pickup board (TV) http://$(HOST):$(PORT)/pickup/loja-centro/"
	@echo "    Demo API users: kiosk1/kiosk1 (Loja Centro), kiosk2/kiosk2 (Loja Aeroporto), kitchen1/kitchen1, cashier1/cashier1, manager1/manager1"
	@if [ -z "$$MERCADOPAGO_ACCESS_TOKEN" ]; then echo "    Payments: Mercado Pago simulator; a QR opens its pay page at $$SITE_URL/mp-simulator/pay/<id>/"; else echo "    Payments: live Mercado Pago"; fi
	@echo "    Background worker:    notifications, refunds, outgoing webhooks; scheduled jobs (see Procfile)"
	@echo ""
	@# One command, one Ctrl-C: honcho runs the Procfile's web server and worker, and stops both.
	HOST=$(HOST) $(BIN)/honcho start -f Procfile -p $(PORT)

# This checkout's own settings, written once: DEBUG and a generated key, so that every `manage.py` command
# (reconcile_payments, cancel_stale_orders...) runs with the same settings as `make run`. Git ignores it.
.env:
	@printf '# Written by `make run` for this checkout (see .env.example for every setting).\nDEBUG=true\nSECRET_KEY=%s\n' \
	  "$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > .env
	@echo "Wrote .env (DEBUG=true and a new SECRET_KEY) for this checkout."

# checkov (tests/test_terraform.py) and pip-audit (make lint) live in a virtualenv of their own: their pins stay
# out of the app's.
$(VENV)/tools/.installed: requirements-tools.txt | $(BIN)/python
	$(PYTHON) -m venv $(VENV)/tools
	$(VENV)/tools/bin/pip install -q -r requirements-tools.txt
	@touch $@

# Coverage for SonarQube (sonar-project.properties reads coverage.xml; what is measured: [tool.coverage] in
# pyproject.toml). Here, not in pytest's addopts, so that a plain `pytest` stays fast. PYTEST_COV= turns it off.
PYTEST_COV ?= --cov --cov-report=xml:coverage.xml --cov-report=term:skip-covered
# The suite on one process per core, up to 4 (pytest-xdist): each gets its own test database (test_<name>_gw0,
# _gw1... on MySQL/MariaDB; its own SQLite file). Much of the suite waits on subprocesses, servers and the
# database, so this about halves it even on 2 cores. Here, not in addopts, so that a plain `pytest` (one test,
# a debugger) stays one process. PYTEST_XDIST= runs it in one process.
PYTEST_XDIST ?= --numprocesses=auto --maxprocesses=4
test: $(VENV)/.dev-installed $(VENV)/tools/.installed compilemessages browser-deps
	$(BIN)/python -m pytest $(PYTEST_XDIST) $(PYTEST_COV) $(PYTEST_ARGS)

# Security lint. bandit: our Python, failing from medium severity and confidence up (the low ones are ruff's S
# rules' job, with their reasons inline); what it skips: [tool.bandit] in pyproject.toml. pip-audit: known
# vulnerabilities in the pins fail; without vulnerability data (offline) it says "NOT checked" and passes.
BANDIT_TARGETS := kiosk orders payments scripts manage.py gunicorn.conf.py
AUDITED_REQUIREMENTS := requirements.txt requirements-dev.txt requirements-tools.txt
lint: $(VENV)/.dev-installed $(VENV)/tools/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/bandit -c pyproject.toml -q -r --severity-level medium --confidence-level medium $(BANDIT_TARGETS)
	PIP_AUDIT=$(VENV)/tools/bin/pip-audit $(BIN)/python scripts/pip_audit.py $(addprefix -r ,$(AUDITED_REQUIREMENTS))

# The load comes from wrk (Debian's package), installed here when missing and we may (root or sudo).
bench: $(VENV)/.dev-installed
	@command -v wrk >/dev/null 2>&1 || { if [ "$$(id -u)" -eq 0 ]; then apt-get install -y -qq wrk >/dev/null \
	  || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; else sudo -n apt-get install -y -qq wrk; fi; }
	$(BIN)/python scripts/bench.py

# The benchmark's journey mix for SOAK_SECONDS, memory sampled; fails on any error or growth (docs/benchmarks.md, Soak).
SOAK_SECONDS ?= 600
soak: $(VENV)/.dev-installed
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python scripts/soak.py

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles coverage.xml .coverage

# Debian's chromium for the browser tests (tests/browser), installed when we may; else they skip and say why.
browser-deps:
	@bash scripts/ensure-system-deps.sh --browser

# The README's pictures of the four screens: the browser test of a restaurant's day (tests/browser) saves them
# at half scale; they are copied to docs/screens/. Needs Debian's chromium (apt-get install chromium).
screenshots: $(VENV)/.dev-installed compilemessages browser-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/browser/test_restaurant_day.py
	@for name in kiosk-menu kiosk-qr kitchen pickup counter; do cp test-artifacts/screens/readme-$$name.png docs/screens/$$name.png; done
	@echo "docs/screens/ updated"
