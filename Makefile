# tradingd — make demo (run the system), make test (everything the tests need, then the tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help venv demo test test-deps test-deps-bridge lint bench c-header docs clean monitoring monitor
.PHONY: demo-screenshot

help:
	@echo "make demo   - set up a local venv and run producer + consumer on the bundled data"
	@echo "              (and tradingd-gateway: the live page's URL is printed)"
	@echo "make demo-screenshot - the live page in headless chromium, saved as SCREENSHOT=PNG"
	@echo "make test   - set up everything the tests need, then run them"
	@echo "make bench  - run the benchmarks (figures side by side with the peers)"
	@echo "make lint   - ruff and mypy --strict"
	@echo "make install / make uninstall - as root: /opt/tradingd, units, users, /etc/tradingd"
	@echo "make c-header - regenerate tools/c/tradingd_segment.h from tradingd/segment/layout.py"
	@echo "make monitor - the demo pair plus a local Prometheus with the rules (prints the URL)"
	@echo "make monitoring - regenerate the rules, the dashboard and docs/metrics.md"

# The C fast paths (tradingd/segment/_fastpath.c, the loader's one-pass CSV parser
# tradingd/producer/loader/_csvfast.c, exec's tradingd/exec/_execfast.c) are compiled by this
# install; it is rebuilt when a source or a generated layout header changes.
C_SOURCES := tradingd/segment/_fastpath.c tradingd/producer/loader/_csvfast.c \
             tradingd/exec/_execfast.c tools/c/tradingd_segment.h tools/c/tradingd_orders.h
$(STAMP): pyproject.toml setup.py $(C_SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(STAMP)

# promtool (Debian package prometheus) lints the metrics; the prometheus server runs the
# monitoring tests (tests/monitoring); installed when root and either is missing.
test-deps:
	@{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing promtool and prometheus (Debian package prometheus)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends prometheus >/dev/null; \
	  else echo "promtool/prometheus missing and not root: metric lint and monitoring tests will be skipped"; fi; }
	@# tradingd-gateway's page test and make demo-screenshot: Debian's chromium + chromium-driver
	@# (driven by Selenium from the test extra; never a downloaded browser)
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium and chromium-driver (Debian) for the live page test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends chromium chromium-driver >/dev/null; \
	  else echo "chromium/chromedriver missing and not root: the page tests will be skipped"; fi; }

# tests/bridge: iproute2 (ip netns: the mirror in its own network namespace) and openssl
# (a throw-away CA for the TLS test); installed when root and missing, else those skip.
test-deps: test-deps-bridge
test-deps-bridge:
	@for tool in ip:iproute2 openssl:openssl; do \
	  command -v $${tool%%:*} >/dev/null 2>&1 && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $${tool#*:} (tests/bridge)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $${tool#*:} >/dev/null; \
	  else echo "$${tool%%:*} missing and not root: some tests/bridge tests will be skipped"; fi; \
	done

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
	$(BIN)/python bench/bench_gateway.py
	$(BIN)/python bench/bench_exec.py
	$(BIN)/python bench/bench_endtoend.py
	$(BIN)/python bench/bench_bridge.py

# The gateway's live page in headless chromium (test-deps installs it), saved as a PNG.
SCREENSHOT ?= build/gateway-page.png
demo-screenshot: venv test-deps
	$(BIN)/tradingd-demo --screenshot $(SCREENSHOT)

# Generated files are replaced only when their text changes: an unchanged header keeps its
# mtime, so the venv (which depends on it, above) is not rebuilt for nothing.
write_if_changed = { $(1) > $(2).tmp && if cmp -s $(2).tmp $(2); then rm -f $(2).tmp; \
	echo "$(2): unchanged"; else mv -f $(2).tmp $(2); echo "$(2): regenerated"; fi; } \
	|| { rm -f $(2).tmp; exit 1; }

c-header: venv
	@$(call write_if_changed,$(BIN)/python -m tradingd.segment.cheader,tools/c/tradingd_segment.h)
	@$(call write_if_changed,$(BIN)/python -m tradingd.exec.cheader,tools/c/tradingd_orders.h)

docs: venv
	@$(call write_if_changed,$(BIN)/python -m tradingd.segment.layout_doc,docs/segment-layout.md)
	@$(call write_if_changed,$(BIN)/python -m tradingd.monitoring.metrics_doc,docs/metrics.md)
	@$(call write_if_changed,$(BIN)/python -m tradingd.exec.cheader --doc,docs/order-rings.md)

# The generated monitoring files (rules, dashboard) and docs/metrics.md; RUNBOOK_URL=... links
# the alerts to where your copy of docs/runbook.md is served.
monitoring: venv
	@$(call write_if_changed,$(BIN)/python -m tradingd.monitoring.rules $(if $(RUNBOOK_URL),--runbook-url $(RUNBOOK_URL)),monitoring/prometheus/tradingd.rules.yml)
	@$(call write_if_changed,$(BIN)/python -m tradingd.monitoring.dashboard,monitoring/grafana/dashboards/tradingd.json)
	@$(call write_if_changed,$(BIN)/python -m tradingd.monitoring.metrics_doc,docs/metrics.md)

# The demo pair plus a local Prometheus (loopback, free ports) with the shipped rules; prints
# the URL. Ctrl-C stops everything. DURATION=N stops after N seconds.
monitor: venv test-deps
	$(BIN)/python -m tradingd.monitoring.monitor $(if $(DURATION),--duration $(DURATION))

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# make install / make uninstall (systemd units, users, /opt/tradingd): see systemd/install.mk
-include systemd/install.mk
