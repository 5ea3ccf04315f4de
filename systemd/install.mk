# make install / make uninstall for tradingd: included by the Makefile
# (`include systemd/install.mk`), or used alone: `make -f systemd/install.mk install`.
#
# As root, `make install` puts:
#   $(PREFIX)                      /opt/tradingd: a virtual environment holding tradingd and its
#                                  dependencies, built with $(TD_PYTHON) -m venv + pip
#   $(TD_DATADIR)                  /opt/tradingd/share/market_data: the bundled market data
#   $(TD_CONFDIR)/tradingd.yaml    /etc/tradingd/tradingd.yaml: config/tradingd.yaml with
#                                  producer.data_dir pointing at $(TD_DATADIR) (an existing,
#                                  edited file is kept; the new one goes beside it as .dist)
#   $(TD_UNITDIR)/tradingd-*.service   /etc/systemd/system
#   $(TD_SYSUSERSDIR)/tradingd.conf    /etc/sysusers.d (users tradingd, tradingd-consumer)
#   $(PREFIX)/tools                /opt/tradingd/tools: the operator's scripts of tools/
# `make uninstall` removes all of it but an edited tradingd.yaml, kept as tradingd.yaml.rpmsave.
# and then, when systemd is running (/run/systemd/system exists) and DESTDIR is empty, runs
# systemd-sysusers, `systemctl daemon-reload` and `systemctl try-restart` of the two units.
# Without a running systemd, the users are created at the next boot by systemd-sysusers.service.
#
# DESTDIR=/some/root stages the same tree under /some/root (packaging, images): the venv is
# built there and then made to work at $(PREFIX) (script shebangs, pyvenv.cfg and the compiled
# .pyc paths are rewritten), since a venv cannot be moved after it is built. Nothing is
# reloaded and no users are created for a staged install.
#
# TD_PYTHON is the system interpreter on purpose (not the one first on PATH, which may live
# under /root or /home: the units' ProtectHome=yes hides those from the daemons).
# Dependency wheels are fetched once into TD_WHEELDIR; later installs are offline (~10 s).

DESTDIR        ?=
PREFIX         ?= /opt/tradingd
SYSCONFDIR     ?= /etc
TD_UNITDIR     ?= $(SYSCONFDIR)/systemd/system
TD_SYSUSERSDIR ?= $(SYSCONFDIR)/sysusers.d
TD_CONFDIR     ?= $(SYSCONFDIR)/tradingd
TD_DATADIR     ?= $(PREFIX)/share/market_data
TD_DOCDIR      ?= $(PREFIX)/share/doc/tradingd
TD_PYTHON      ?= /usr/bin/python3
TD_SRCDIR      := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
TD_WHEELDIR    ?= $(TD_SRCDIR)/build/wheels
# Addresses the tradingd-bridge units may reach besides localhost (their NATS servers).
NATS_ALLOW     ?=

TD_INSTALL_ENV = DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' SYSCONFDIR='$(SYSCONFDIR)' \
	TD_UNITDIR='$(TD_UNITDIR)' TD_SYSUSERSDIR='$(TD_SYSUSERSDIR)' TD_CONFDIR='$(TD_CONFDIR)' \
	TD_DATADIR='$(TD_DATADIR)' TD_DOCDIR='$(TD_DOCDIR)' TD_PYTHON='$(TD_PYTHON)' \
	TD_WHEELDIR='$(TD_WHEELDIR)' NATS_ALLOW='$(NATS_ALLOW)'

.PHONY: install uninstall

install:
	@$(TD_INSTALL_ENV) sh $(TD_SRCDIR)/systemd/install.sh install

uninstall:
	@$(TD_INSTALL_ENV) sh $(TD_SRCDIR)/systemd/install.sh uninstall
