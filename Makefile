# The two commands a new user needs: `make run` and `make test`. Everything they need is
# installed into .venv on first use, from pyproject.toml at the versions in
# constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test fuzz lint format gen install tools constraints bench test-oracle oracle-up oracle-down docker clean screenshots

run: $(STAMP)
	$(BIN)/switchyard serve

test: $(STAMP) tools
	$(BIN)/pytest $(PYTEST_ARGS)

# The fuzz suite (tests/fuzz) alone, for longer than `make test` runs it: random examples
# instead of the same ones every time, FUZZ_EXAMPLES requests per RPC (a third as many with
# authentication on), FUZZ_SECONDS at most per RPC when set. The summary (requests per RPC,
# statuses, longest stall, memory) is printed and written to FUZZ_REPORT.
FUZZ_EXAMPLES ?= 400
FUZZ_SECONDS ?=
FUZZ_REPORT ?= fuzz-report.json

fuzz: $(STAMP)
	SWITCHYARD_FUZZ_PROFILE=long SWITCHYARD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	SWITCHYARD_FUZZ_SECONDS=$(FUZZ_SECONDS) SWITCHYARD_FUZZ_REPORT=$(FUZZ_REPORT) \
	$(BIN)/pytest tests/fuzz $(PYTEST_ARGS)

NODE_EXAMPLE := examples/node

# The tests start throwaway redis-server processes (never the machine's own on 6379), run
# the Node.js example (examples/node) with its locked npm packages, and drive the web
# console in Debian's Chromium (Playwright never downloads a browser of its own).
tools: $(NODE_EXAMPLE)/node_modules/.installed
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { \
		echo "installing redis-server for the tests (Debian package redis-server)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }
	@command -v chromium >/dev/null || { \
		echo "installing Chromium for the console's browser tests (Debian package chromium)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# `npm ci` empties node_modules first: the stamp inside it is newer than the lock file only
# after an install from this lock file has completed.
$(NODE_EXAMPLE)/node_modules/.installed: $(NODE_EXAMPLE)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { \
		echo "installing Node.js and npm for the example in $(NODE_EXAMPLE) (Debian packages nodejs, npm)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs npm; }
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' || { \
		echo "make test needs Node.js 18 or newer for $(NODE_EXAMPLE); this is $$(node --version)" >&2; \
		exit 1; }
	npm ci --prefix $(NODE_EXAMPLE) --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# The README's pictures of the web console, as its browser tests see it.
screenshots: $(STAMP) tools
	SWITCHYARD_SCREENSHOTS=docs/console $(BIN)/pytest tests/console/test_browser.py -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/buf lint
	$(BIN)/python scripts/gen_protos.py --check

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

gen: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

install: $(STAMP)

# xds-protos (Envoy's protocol) ships a stale copy of opentelemetry-proto's modules under
# the same paths, and whichever installs last wins (grpc/grpc#42926): put the real ones
# back, or the OTLP exporter fails to import.
OTEL_PROTO_FIX = $(BIN)/python -m pip install --quiet --force-reinstall --no-deps \
	-c constraints.txt opentelemetry-proto

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(OTEL_PROTO_FIX)
	rm -f $(VENV)/.installed-*
	touch $@

constraints: $(STAMP)
	$(BIN)/python -m pip install --quiet --upgrade -e '.[dev]'
	$(OTEL_PROTO_FIX)
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^switchyard'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

# Every benchmark; one of them with BENCH=getvalue, BENCH=evalflag, BENCH=checklimit, BENCH=envoy,
# BENCH=engine, BENCH=fanout, BENCH=auth, ... (and its options after the name: BENCH="fanout --rounds 1").
BENCH ?=

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH)

# The storage contract suite against a real Oracle Database Free, where Docker runs.
ORACLE_DSN ?= oracle://switchyard:switchyard@127.0.0.1:1521/FREEPDB1

oracle-up:
	docker compose up --detach --wait oracle

oracle-down:
	docker compose down

test-oracle: $(STAMP) oracle-up
	@# The image reports healthy a few seconds before its application user exists.
	@for attempt in $$(seq 1 30); do \
		$(BIN)/switchyard migrate --database-url $(ORACLE_DSN) && break; \
		[ $$attempt -eq 30 ] && exit 1; sleep 5; \
	done
	SWITCHYARD_TEST_ORACLE_DSN=$(ORACLE_DSN) $(BIN)/pytest tests/store $(PYTEST_ARGS)

docker:
	docker build --tag switchyard .

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache bench/results
