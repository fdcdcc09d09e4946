# Two commands: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Reinstall whenever pyproject.toml changes.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: demo test test-cluster lint fmt bench venv clean fuzz axe

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

# axe-core from the npm registry, pinned: the page walk (tests/web/test_every_page.py)
# injects it into every page in headless Chromium.
AXE_VERSION := 4.14.1
AXE_JS      := .cache/axe-$(AXE_VERSION)/node_modules/axe-core/axe.min.js
$(AXE_JS):
	npm install --prefix .cache/axe-$(AXE_VERSION) --no-save --no-audit --no-fund --silent axe-core@$(AXE_VERSION)

axe: $(AXE_JS)

demo: $(STAMP)
	$(BIN)/loyalwallet demo

# The suite runs in TEST_WORKERS processes (pytest-xdist; each has its own database, data
# dir and servers), with mypy checking the types beside them (a cold mypy takes ~30 s).
TEST_WORKERS ?= 2
test: $(STAMP) $(AXE_JS)
	$(BIN)/ruff check src tests bench
	@out=$$(mktemp); $(BIN)/mypy > $$out 2>&1 & mypy=$$!; \
	  $(BIN)/python -m pytest -n $(TEST_WORKERS); tests=$$?; \
	  wait $$mypy; types=$$?; cat $$out; rm -f $$out; \
	  [ $$tests -eq 0 ] && [ $$types -eq 0 ]

# Several hosts in network namespaces (root): PostgreSQL, two app hosts, two workers, Caddy
# as the balancer; purchases and a campaign while an app host and a worker host are killed.
test-cluster: $(STAMP)
	LOYALWALLET_CLUSTER=1 $(BIN)/python -m pytest -m cluster tests/cluster -s

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python bench/checkout.py

# A longer schemathesis run (10 min on SQLite, then 10 min on PostgreSQL); figures in bench/RESULTS.md.
fuzz: $(STAMP)
	$(BIN)/python bench/fuzz.py --seconds $${FUZZ_SECONDS:-600}
	$(BIN)/python bench/fuzz.py --seconds $${FUZZ_SECONDS:-600} --database-url $${FUZZ_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}

clean:
	rm -rf $(VENV) .loyalwallet build dist src/*.egg-info
