# repynet developer tasks; `make help` lists them.
PYTHON ?= .venv/bin/python
PIP ?= .venv/bin/pip
# The lint extra's pinned clang-format, whatever else is on PATH.
CLANG_FORMAT = $(PYTHON) -c "import clang_format; clang_format.clang_format()"
C_SOURCES = csrc/*.c csrc/*.h tests/c/*.c tests/c/*.h
# The sanitizers of `make test-asan` (float-cast-overflow is not in "undefined").
SANITIZE ?= address,undefined,float-cast-overflow

.PHONY: help venv build test test-slow test-asan fuzz fuzz-long reliability lint typecheck fmt \
	docs bench valgrind-c wheel

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

venv: ## create .venv with the test, docs and lint tools
	python3 -m venv .venv
	$(PIP) install -q -e '.[test,docs,lint]'

build: ## rebuild the C extension in place (-Werror)
	REPYNET_WERROR=1 $(PYTHON) setup.py -q build_ext --inplace

test: ## run the default test suite (the README's command)
	$(PYTHON) -m pytest

test-slow: ## run only the long load/soak tests
	$(PYTHON) -m pytest -m slow

test-asan: ## the default suite under ASan+UBSan, built in a copy, run from outside the tree
	@set -e; copy=$$(mktemp -d /tmp/repynet-asan.XXXXXX); outside=$$(mktemp -d /tmp/repynet-asan-run.XXXXXX); \
	git ls-files -z | xargs -0 cp --parents -t "$$copy"; \
	cd "$$copy" && REPYNET_WERROR=1 REPYNET_SANITIZE=$(SANITIZE) $(CURDIR)/$(PYTHON) setup.py -q build_ext --inplace; \
	cd "$$outside"; status=0; \
	sanitized() { PYTHONPATH="$$copy" REPYNET_SANITIZE=$(SANITIZE) \
		LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
		ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:log_path=$$outside/ubsan \
		PYTHONMALLOC=malloc $(CURDIR)/$(PYTHON) "$$@"; }; \
	sanitized -c 'import sys, repynet._repynet as m; \
		assert m.__file__.startswith(sys.argv[1]), m.__file__; print("testing", m.__file__)' "$$copy"; \
	sanitized -m pytest -q -p no:cacheprovider -c "$$copy/pyproject.toml" --rootdir "$$copy" \
		"$$copy/tests" $(ARGS) || status=$$?; \
	if ls "$$outside"/ubsan.* >/dev/null 2>&1; then cat "$$outside"/ubsan.*; \
		echo "test-asan: UBSan reported the errors above"; status=1; fi; \
	rm -rf "$$copy" "$$outside"; exit $$status

fuzz: ## every fuzz target for 30 s from fuzz/corpus (clang, atheris from source)
	$(PYTHON) fuzz/run.py --time $(or $(FUZZ_TIME),30)

fuzz-long: ## every fuzz target for 30 min; new coverage goes into fuzz/corpus
	$(PYTHON) fuzz/run.py --time $(or $(FUZZ_TIME),1800) --merge

reliability: ## rerun the reliability figures and rewrite them in docs/reliability.md
	$(PYTHON) tools/reliability_report.py

lint: ## ruff on the Python code, clang-format check on the C code
	$(PYTHON) -m ruff check repynet tests tools bench
	cd /tmp && $(CURDIR)/$(PYTHON) -m mypy.stubtest repynet._repynet
	$(CLANG_FORMAT) --dry-run --Werror $(C_SOURCES)

typecheck: ## mypy --strict on the package and on user code (tests/typing)
	tests/typing/check.sh $(PYTHON)

wheel: ## release sdist + manylinux2014 wheel in dist/ (zig cc, auditwheel; no container)
	PYTHON=$(PYTHON) tools/manylinux_wheel.sh dist

fmt: ## format the C code with clang-format
	$(CLANG_FORMAT) -i $(C_SOURCES)

docs: ## build the docs with warnings as errors
	$(PYTHON) -m sphinx -W -q -b html docs docs/_build/html

valgrind-c: ## run every C unit test under valgrind memcheck (errors and leaks fail)
	@set -e; rm -rf build/valgrind-c/shared; mkdir -p build/valgrind-c/shared; \
	flags="$$(REPYNET_SANITIZE= python3 -c 'import sys; sys.path.insert(0, "tools"); import build_flags; print(" ".join(build_flags.compile_args()))')"; \
	(cd build/valgrind-c/shared && $${CC:-cc} $$flags -g -O0 -I$(CURDIR)/csrc -I$(CURDIR)/tests/c \
		-c $(CURDIR)/tests/c/rn_test_*.c $(CURDIR)/csrc/rn_*.c); \
	for src in tests/c/test_*.c; do \
		bin=build/valgrind-c/$$(basename $$src .c); \
		$${CC:-cc} $$flags -g -O0 -Icsrc -Itests/c $$src build/valgrind-c/shared/*.o -o $$bin -lpthread; \
		for t in $$($$bin --list); do \
			timeout 300 valgrind -q --error-exitcode=1 --leak-check=full $$bin $$t >/dev/null || \
				{ echo "valgrind-c: $$bin $$t failed (or hung past 300 s)"; exit 1; }; \
		done; \
	done; \
	echo "valgrind-c: every C test is clean under memcheck"

bench: ## every benchmark, quiet and under load; writes docs/bench-results.md and its chart (ARGS=--quick for a short run)
	$(PYTHON) bench/run.py --load --docs $(ARGS)
