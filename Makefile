# One task runner for developers and CI. Every target that runs code depends on `install`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install toolchains demo test test-fast fuzz lint docs bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# clang, wasm-ld and wasi-libc build the C plugins the WASM tests load (sdk/c/build.sh);
# installed from Debian only when one of them is missing. Then the AssemblyScript compiler
# (needs Node and npm), when sdk/assemblyscript/node_modules has none.
WASI_LIBC := /usr/lib/wasm32-wasi/libc.a
toolchains:
	@if ! command -v clang >/dev/null 2>&1 || ! command -v wasm-ld >/dev/null 2>&1 \
	    || [ ! -f $(WASI_LIBC) ] \
	    || [ ! -f "$$(clang --target=wasm32-wasi -print-libgcc-file-name 2>/dev/null)" ]; then \
	  echo "installing clang, lld and wasi-libc (C to WebAssembly)"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
	  && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	       clang lld wasi-libc libclang-rt-14-dev-wasm32 >/dev/null; \
	fi
	@# tmux runs the real-terminal test of the TUI (tests/tui/test_tmux.py).
	@if ! command -v tmux >/dev/null 2>&1; then \
	  echo "installing tmux (the TUI's real-terminal test)"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
	  && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null; \
	fi
	@# Chromium: the web UI's browser tests drive Debian's with Playwright (tests/web/browser).
	@if ! command -v chromium >/dev/null 2>&1; then \
	  echo "installing chromium (the web UI's browser tests)"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
	  && $$sudo env DEBIAN_FRONTEND=noninteractive \
	       apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	fi
	@# AssemblyScript plugins (sdk/assemblyscript/build.sh): the compiler pinned in its lockfile.
	@if [ ! -x sdk/assemblyscript/node_modules/.bin/asc ]; then \
	  echo "installing the AssemblyScript compiler (npm ci)"; \
	  npm ci --prefix sdk/assemblyscript --no-audit --no-fund; \
	fi

# The dashboard on the demo workload with the sample plugins, their permissions pre-granted
# (plain `rwq demo` asks for them in the approval dialog instead).
demo: install
	$(VENV)/bin/rwq demo --plugins src/rwq/samples --policy src/rwq/samples/demo-policy.yaml

test: install toolchains
	$(PY) -m pytest

# The suite without the tests marked slow (a fresh install of the wheel, real terminals).
test-fast: install toolchains
	$(PY) -m pytest -m "not slow"

# The property tests of every boundary (manifest, settings, host calls, UI elements, events,
# displayed text) with 50 times the examples `make test` gives them.
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -m fuzz --timeout 3600

lint: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

# The reference docs generated from the code (events, host API, permissions, UI elements, the
# Starlark host functions); a test fails when one is out of date.
docs: install
	$(PY) -m rwq.docs

bench: install
	$(VENV)/bin/rwq bench queue --json

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
