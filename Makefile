# distcore's tasks. `make help` lists them. Everything runs inside .venv, which `install` creates.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
ACTIVATE := source $(VENV)/bin/activate

.PHONY: help
help: ## show this help
	@grep -E '^[a-z-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -U pip 'maturin>=1.9,<2'
	$(PIP) install -q $$($(PY) scripts/deps.py test bench lint plot)
	touch $@

.PHONY: install
install: $(VENV)/.installed ## create .venv with maturin and the Python deps; as root, also the Debian servers the tests start
	@if [ "$$(id -u)" = 0 ]; then scripts/install_services.sh; \
	else echo "not root: skipping Debian's memcached, nutcracker, chrony, faketime, serf (their tests will skip)"; fi

.PHONY: build-dev
build-dev: install ## build the extension in debug mode, in place
	$(ACTIVATE) && maturin develop -q

.PHONY: build-prod
build-prod: install ## build the extension in release mode, in place
	$(ACTIVATE) && maturin develop -q --release

.PHONY: wheel
wheel: install ## build the abi3 release wheel into dist/ and install it into .venv
	rm -rf dist && $(ACTIVATE) && maturin build -q --release --out dist
	$(PIP) install -q --force-reinstall --no-deps dist/distcore-*.whl

.PHONY: demo
demo: build-prod ## run `distcore demo`
	$(VENV)/bin/distcore demo

.PHONY: lint-rust
lint-rust: ## cargo fmt --check and clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: lint-python
lint-python: install ## ruff check and format --check
	$(VENV)/bin/ruff check python tests benches scripts
	$(VENV)/bin/ruff format --check python tests benches scripts

.PHONY: test-rust
test-rust: ## cargo test
	cargo test --workspace

.PHONY: stubtest
stubtest: ## check python/distcore/_core.pyi against the installed binary
	$(PY) -m mypy.stubtest distcore._core --allowlist .stubtest-allowlist

.PHONY: test
test: install lint-rust test-rust wheel lint-python stubtest ## everything: lints, cargo test, the release wheel, stubtest and pytest against the wheel
	DISTCORE_EXPECT_WHEEL=1 $(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

.PHONY: bench
bench: build-prod ## benchmarks side by side with the peers (ONLY="mapreduce gossip" for some); writes bench-results/NAME.{json,md,png}
	$(VENV)/bin/distcore bench --out bench-results $(foreach c,$(ONLY),--only $(c))

.PHONY: bench-rust
bench-rust: ## criterion benches of the core crate
	cargo bench -p distcore-core

.PHONY: clean
clean: ## remove build outputs and the venv
	cargo clean; rm -rf $(VENV) dist bench-results .pytest_cache .ruff_cache .mypy_cache
