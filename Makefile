# kanban: `make demo` sets everything up and runs a demo sprint; `make test` runs the suite.
PREFIX ?= /usr/local
DESTDIR ?=
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BATS := .tools/node_modules/bats/bin/bats
KANBAN_LIB := $(DESTDIR)$(PREFIX)/lib/kanban
# extras for make install, e.g. EXTRAS="postgres web" (see pyproject.toml)
EXTRAS ?=

# sprint targets (kanban.mk) against this checkout's kanban
KANBAN = $(CURDIR)/bin/kanban
include kanban.mk

# `make -j2 clean all` ran clean beside the other goals: it deleted the venv setup was
# building (or had just found up to date).  Named with other goals, the goals run one
# after another in the order given, as without -j: `make -j2 clean all` cleans, then builds.
ifneq ($(filter clean,$(MAKECMDGOALS)),)
ifneq ($(filter-out clean,$(MAKECMDGOALS)),)
.NOTPARALLEL:
endif
endif

.PHONY: all setup demo test pytest bats check lint bench bench-quick soak dist install uninstall clean

all: setup

setup: $(VENV)/.done

# the run-time half (what `make demo` needs), then the test tools on top of it
$(VENV)/.runtime: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "kanban needs Python 3.11+" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) tools/requirements.py > $(VENV)/requirements-runtime.txt
	$(PY) -m pip install -q -r $(VENV)/requirements-runtime.txt
	@# the package itself is this checkout's lib/, put on the venv's path (no build step, no copy)
	$(PY) -c 'import site; open(site.getsitepackages()[0] + "/kanban.pth", "w").write("$(CURDIR)/lib\n")'
	@# setuptools' distutils-precedence.pth costs every kanban call an import: not needed at run time
	$(PY) -m pip uninstall -q -y setuptools
	touch $@

$(VENV)/.done: $(VENV)/.runtime pyproject.toml
	$(PY) tools/requirements.py test > $(VENV)/requirements.txt
	$(PY) -m pip install -q -r $(VENV)/requirements.txt
	$(PY) -m pip uninstall -q -y setuptools
	touch $@

$(BATS):
	mkdir -p .tools
	npm install --silent --no-audit --no-fund --prefix .tools bats@1 >/dev/null
	@test -x $(BATS)

demo: $(VENV)/.runtime
	./examples/demo-sprint

test: setup $(BATS)
	$(MAKE) --no-print-directory lint check
	# two workers, a test file each at a time (pytest-xdist): most tests wait on processes,
	# locks and servers rather than the CPU, so the suite takes about half as long
	KANBAN_TEST_PG=$${KANBAN_TEST_PG-} $(PY) -m pytest -q -n 2 --dist loadfile tests; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || exit $$rc
	PATH="$(CURDIR)/bin:$$PATH" $(BATS) tests

pytest: setup
	$(PY) -m pytest tests

bats: setup $(BATS)
	PATH="$(CURDIR)/bin:$$PATH" $(BATS) tests

lint: setup
	$(VENV)/bin/ruff check lib tests bench

check: setup
	$(PY) tests/check_tree.py

bench: setup
	$(PY) tools/requirements.py bench > $(VENV)/requirements-bench.txt
	$(PY) -m pip install -q -r $(VENV)/requirements-bench.txt
	$(PY) bench/run.py --out bench/results

bench-quick: setup
	$(PY) bench/run.py --quick --out bench/results-quick

# with KANBAN_TEST_PG set, the soak runs a second time on that server (pg_terminate_backend kills),
# and a third on a throwaway cluster of its own (initdb, pg_ctl) restarted in the middle: -m fast,
# then -m immediate (a crash); that one is skipped, saying why, where initdb and pg_ctl are missing;
# and where pgbouncer is installed, a fourth time on its own cluster with the workers through PgBouncer
soak: setup
	$(PY) tests/chaos.py --minutes $${SOAK_MINUTES:-3}
	if [ -n "$${KANBAN_TEST_PG:-}" ]; then $(PY) tests/chaos.py --minutes $${SOAK_MINUTES:-3} --pg "$$KANBAN_TEST_PG"; fi
	if [ -n "$${KANBAN_TEST_PG:-}" ] && $(PY) tests/pgcluster.py --check; then \
	  $(PY) tests/chaos.py --minutes $${SOAK_MINUTES:-3} --pg-own-cluster --pg-restarts $${SOAK_PG_RESTARTS:-4}; \
	  if command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; then \
	    $(PY) tests/chaos.py --minutes $${SOAK_MINUTES:-3} --pg-own-cluster --pgbouncer; fi; fi

# the wheel and the sdist (pip install / pipx install them): what `python -m build` makes, with
# the venv's build backend (the test extra has it) instead of downloading one
dist: setup
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist .

install:
	$(PYTHON) -m venv $(KANBAN_LIB)/.venv
	$(PYTHON) tools/requirements.py $(EXTRAS) > $(KANBAN_LIB)/requirements.txt
	$(KANBAN_LIB)/.venv/bin/pip install -q -r $(KANBAN_LIB)/requirements.txt
	mkdir -p $(KANBAN_LIB) $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man7
	cp -R bin libexec porcelain lib schemas hooks.d kanban.mk $(KANBAN_LIB)/
	find $(KANBAN_LIB)/lib -name __pycache__ -prune -exec rm -rf {} +
	$(KANBAN_LIB)/.venv/bin/python -m compileall -q $(KANBAN_LIB)/lib
	for f in $(KANBAN_LIB)/bin/* $(KANBAN_LIB)/libexec/* $(KANBAN_LIB)/porcelain/*; do \
	  if grep -q "^'''':" "$$f"; then \
	    sed -i -e "1s|.*|#!$(PREFIX)/lib/kanban/.venv/bin/python -E|" -e "/^'''':/d" "$$f"; fi; done
	ln -sf ../lib/kanban/bin/kanban $(DESTDIR)$(PREFIX)/bin/kanban
	cp man/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	cp man/man7/*.7 $(DESTDIR)$(PREFIX)/share/man/man7/
	mkdir -p $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	./bin/kanban completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/kanban
	mkdir -p $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	./bin/kanban completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_kanban
	./bin/kanban completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/kanban.fish

uninstall:
	rm -rf $(KANBAN_LIB)
	rm -f $(DESTDIR)$(PREFIX)/bin/kanban $(DESTDIR)$(PREFIX)/share/bash-completion/completions/kanban
	rm -f $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_kanban $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/kanban.fish
	rm -f $(DESTDIR)$(PREFIX)/share/man/man1/kanban.1 $(DESTDIR)$(PREFIX)/share/man/man1/kanban-*.1
	rm -f $(DESTDIR)$(PREFIX)/share/man/man7/kanban-*.7

clean:
	rm -rf $(VENV) .tools build dist *.egg-info lib/*.egg-info
