# tradingd — make demo (run the system), make test (everything the tests need, then the tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help venv demo test test-deps lint bench c-header docs clean

help:
	@echo "make demo   - set up a local venv and run producer + consumer on the bundled data"
	@echo "make test   - set up everything the tests need, then run them"
	@echo "make bench  - run the benchmarks (figures side by side with the peers)"
	@echo "make lint   - ruff and mypy --strict"
	@echo "make install / make uninstall - as root: /opt/tradingd, units, users, /etc/tradingd"
	@echo "make c-header - regenerate tools/c/tradingd_segment.h from tradingd/segment/layout.py"

# The C fast path (tradingd/segment/_fastpath.c) is compiled by this install; it is rebuilt when
# its source or the generated layout header changes.
$(STAMP): pyproject.toml setup.py tradingd/segment/_fastpath.c tools/c/tradingd_segment.h
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(STAMP)

# promtool (Debian package prometheus) lints the metrics; installed when root and missing.
test-deps:
	@command -v promtool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing promtool (Debian package prometheus)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends prometheus >/dev/null; \
	  else echo "promtool missing and not root: metric lint tests will be skipped"; fi; }

# lint first: a type error fails `make test` (and so CI) before the suite runs.
test: venv test-deps lint
	$(BIN)/python -m pytest -q

# ruff, then mypy --strict ([tool.mypy] in pyproject.toml: files, stubs/ for posix_ipc)
lint: venv
	$(BIN)/ruff check tradingd tests tools bench
	$(BIN)/mypy

# Ctrl-C stops it; DURATION=N stops it after N seconds.
demo: venv
	$(BIN)/tradingd-demo $(if $(DURATION),--duration $(DURATION))

# Benchmarks print tradingd's figures beside the peers measured in the same run; the
# peers' packages (pandas, iceoryx2) come with the bench extra.
bench: venv
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python bench/bench_segment.py
	$(BIN)/python bench/bench_loader.py
	$(BIN)/python bench/bench_producer.py
	$(BIN)/python bench/bench_consumer.py

# Generated files are replaced only when their text changes: an unchanged header keeps its
# mtime, so the venv (which depends on it, above) is not rebuilt for nothing.
write_if_changed = { $(1) > $(2).tmp && if cmp -s $(2).tmp $(2); then rm -f $(2).tmp; \
	echo "$(2): unchanged"; else mv -f $(2).tmp $(2); echo "$(2): regenerated"; fi; } \
	|| { rm -f $(2).tmp; exit 1; }

c-header: venv
	@$(call write_if_changed,$(BIN)/python -m tradingd.segment.cheader,tools/c/tradingd_segment.h)

docs: venv
	@$(call write_if_changed,$(BIN)/python -m tradingd.segment.layout_doc,docs/segment-layout.md)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# make install / make uninstall (systemd units, users, /opt/tradingd): see systemd/install.mk
-include systemd/install.mk
