#!/bin/sh
# Installs or removes tradingd system-wide; run by systemd/install.mk (`make install`,
# `make uninstall`), which passes the locations below through the environment. What goes where
# and why: see the comment at the top of install.mk.
set -eu

: "${DESTDIR=}"
: "${PREFIX:=/opt/tradingd}"
: "${SYSCONFDIR:=/etc}"
: "${TD_UNITDIR:=$SYSCONFDIR/systemd/system}"
: "${TD_SYSUSERSDIR:=$SYSCONFDIR/sysusers.d}"
: "${TD_CONFDIR:=$SYSCONFDIR/tradingd}"
: "${TD_DATADIR:=$PREFIX/share/market_data}"
: "${TD_DOCDIR:=$PREFIX/share/doc/tradingd}"
: "${TD_PYTHON:=/usr/bin/python3}"

SRC=$(cd "$(dirname "$0")/.." && pwd)
: "${TD_WHEELDIR:=$SRC/build/wheels}"

UNITS="tradingd-producer.service tradingd-consumer.service"
UNITS="$UNITS tradingd-gateway.service"
UNITS="$UNITS tradingd-exec.service"  # order management (issue 18)
# tradingd-bridge (docs/multi-host.md): installed, not started until enabled on purpose.
BRIDGE_UNITS="tradingd-bridge-publish.service tradingd-bridge-mirror.service"
# NATS_ALLOW="10.1.2.0/24 10.1.3.4": addresses the bridge units may reach (IPAddressAllow=).
: "${NATS_ALLOW=}"
NATS_CRED_PLACEHOLDER="# NATS credentials for tradingd-bridge (LoadCredential=nats:...): user=NAME and password=SECRET lines, or token=SECRET; empty = none"
MARKER=.installed-by-tradingd
ROOT=$DESTDIR$PREFIX

say() { printf '  %-9s %s\n' "$1" "$2"; }
die() { printf 'make install: %s\n' "$*" >&2; exit 1; }

# systemd is the running init (sd_booted(3)): only then reload it and create users now.
systemd_running() { [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; }

check_paths() {
    case "$PREFIX" in
        /*) ;;
        *) die "PREFIX must be an absolute path (got '$PREFIX')" ;;
    esac
    case "$PREFIX" in
        / | /usr | /usr/local | /opt | /etc | /var | /home | /root | /tmp)
            die "PREFIX=$PREFIX is a system directory; tradingd needs a directory of its own" ;;
    esac
    # Never replace (or remove) a directory this script did not create.
    if [ -d "$ROOT" ] && [ ! -e "$ROOT/$MARKER" ] && [ -n "$(ls -A "$ROOT")" ]; then
        die "$ROOT exists and was not installed by tradingd (no $MARKER in it): refusing to touch it"
    fi
}

# The requirements (runtime and build) from pyproject.toml, one shell-quoted word each.
requirements() {
    "$TD_PYTHON" - "$SRC/pyproject.toml" <<'EOF'
import shlex
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    meta = tomllib.load(f)
reqs = meta["project"].get("dependencies", []) + meta["build-system"].get("requires", [])
print(" ".join(shlex.quote(r) for r in reqs + ["wheel"]))
EOF
}

build_venv() {
    "$TD_PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
        || die "$TD_PYTHON cannot build a virtual environment (Debian: apt-get install python3-venv)"
    if [ -e "$ROOT/$MARKER" ]; then
        say REMOVE "$ROOT (previous install)"
        rm -rf "$ROOT"
    fi
    say VENV "$ROOT ($TD_PYTHON -m venv)"
    "$TD_PYTHON" -m venv "$ROOT"
    touch "$ROOT/$MARKER"

    reqs=$(requirements)
    if [ ! -f "$TD_WHEELDIR/.stamp" ] || [ "$(cat "$TD_WHEELDIR/.stamp")" != "$reqs" ]; then
        say WHEELS "$TD_WHEELDIR (downloaded once; later installs are offline)"
        mkdir -p "$TD_WHEELDIR"
        eval "set -- $reqs"
        "$ROOT/bin/pip" wheel --quiet --disable-pip-version-check --wheel-dir "$TD_WHEELDIR" "$@"
        printf '%s' "$reqs" > "$TD_WHEELDIR/.stamp"
    fi

    # Build from a copy: pip builds in the source tree, and the checkout is not ours to write.
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$SRC" && tar --exclude=__pycache__ --exclude='*.so' -cf - pyproject.toml tradingd \
        $(ls -d setup.py tools/c/*.h tools/c/*.c README.md LICENSE 2>/dev/null || true)) \
        | tar -C "$tmp" -xf -
    [ -f "$tmp/README.md" ] || : > "$tmp/README.md"
    say PIP "tradingd + dependencies -> $ROOT (offline, from $TD_WHEELDIR)"
    "$ROOT/bin/pip" install --quiet --disable-pip-version-check --no-index \
        --find-links "$TD_WHEELDIR" "$tmp"
    rm -rf "$tmp"
    trap - EXIT

    if [ -n "$DESTDIR" ]; then
        # Staged: make the venv correct at $PREFIX, where it will run.
        say RELOCATE "$ROOT -> $PREFIX"
        grep -rlI --null -F -- "$ROOT" "$ROOT/bin" "$ROOT/pyvenv.cfg" \
            | xargs -0 -r sed -i "s#$ROOT#$PREFIX#g"
        find "$ROOT" -name __pycache__ -type d -prune -exec rm -rf {} +
        "$ROOT/bin/python" -m compileall -q -j 0 -s "$DESTDIR" -p / "$ROOT/lib" >/dev/null
    fi
}

install_data() {
    say DATA "$DESTDIR$TD_DATADIR"
    rm -rf "$DESTDIR$TD_DATADIR"
    mkdir -p "$DESTDIR$TD_DATADIR"
    if [ -d "$SRC/market_data" ]; then
        (cd "$SRC/market_data" && tar -cf - .) | tar -C "$DESTDIR$TD_DATADIR" -xf -
    fi
    touch "$DESTDIR$TD_DATADIR/$MARKER"
    chmod -R u=rwX,go=rX "$DESTDIR$TD_DATADIR"
    mkdir -p "$DESTDIR$TD_DOCDIR"
    for doc in README.md systemd/README-operator.md docs/multi-host.md docs/websocket-api.md; do
        [ -f "$SRC/$doc" ] && install -m 0644 "$SRC/$doc" "$DESTDIR$TD_DOCDIR/"
    done
    return 0
}

# tools/ (README "Inspecting a segment"): the operator's scripts, run from $PREFIX/tools on a
# service host (shm-hexdump finds tradingd-inspect in $PREFIX/bin beside it). Part of the
# venv directory, so a reinstall refreshes them and uninstall removes them.
install_tools() {
    say TOOLS "$ROOT/tools"
    mkdir -p "$ROOT/tools/c"
    for f in "$SRC"/tools/*; do
        [ -f "$f" ] || continue
        case "$f" in
            *.md) install -m 0644 "$f" "$ROOT/tools/" ;;
            *) install -m 0755 "$f" "$ROOT/tools/" ;;
        esac
    done
    install -m 0644 "$SRC"/tools/c/*.h "$SRC"/tools/c/*.c "$ROOT/tools/c/"
}

install_units() {
    mkdir -p "$DESTDIR$TD_UNITDIR" "$DESTDIR$TD_SYSUSERSDIR"
    for unit in $UNITS; do
        say UNIT "$DESTDIR$TD_UNITDIR/$unit"
        sed -e "s#/opt/tradingd#$PREFIX#g" -e "s#/etc/tradingd#$TD_CONFDIR#g" \
            "$SRC/systemd/$unit" > "$DESTDIR$TD_UNITDIR/$unit.tmp"
        chmod 0644 "$DESTDIR$TD_UNITDIR/$unit.tmp"
        mv -f "$DESTDIR$TD_UNITDIR/$unit.tmp" "$DESTDIR$TD_UNITDIR/$unit"
    done
    for unit in $BRIDGE_UNITS; do
        say UNIT "$DESTDIR$TD_UNITDIR/$unit${NATS_ALLOW:+ (IPAddressAllow= also $NATS_ALLOW)}"
        sed -e "s#/opt/tradingd#$PREFIX#g" -e "s#/etc/tradingd#$TD_CONFDIR#g" \
            -e "s#^IPAddressAllow=localhost\$#IPAddressAllow=localhost${NATS_ALLOW:+ $NATS_ALLOW}#" \
            "$SRC/systemd/$unit" > "$DESTDIR$TD_UNITDIR/$unit.tmp"
        chmod 0644 "$DESTDIR$TD_UNITDIR/$unit.tmp"
        mv -f "$DESTDIR$TD_UNITDIR/$unit.tmp" "$DESTDIR$TD_UNITDIR/$unit"
    done
    say SYSUSERS "$DESTDIR$TD_SYSUSERSDIR/tradingd.conf"
    install -m 0644 "$SRC/systemd/tradingd.sysusers" "$DESTDIR$TD_SYSUSERSDIR/tradingd.conf"
}

# The bridge units' LoadCredential= needs the file to exist: an empty one means no credentials.
install_nats_credentials() {
    mkdir -p "$DESTDIR$TD_CONFDIR"
    cred=$DESTDIR$TD_CONFDIR/nats.cred
    if [ ! -e "$cred" ]; then
        (umask 077 && printf '%s\n' "$NATS_CRED_PLACEHOLDER" > "$cred")
        say CRED "$cred (empty: no NATS credentials; mode 0600)"
    fi
}

# config/tradingd.yaml with producer.data_dir pointing at the installed data and
# segment.owner: tradingd. The lines are rewritten in place (comments survive), then the result is parsed to prove it took effect.
install_config() {
    mkdir -p "$DESTDIR$TD_CONFDIR"
    target=$DESTDIR$TD_CONFDIR/tradingd.yaml
    new=$target.new
    "$ROOT/bin/python" - "$SRC/config/tradingd.yaml" "$new" "$TD_DATADIR" <<'EOF'
import json
import re
import sys

import yaml

src, dst, data_dir = sys.argv[1:]
try:
    with open(src, encoding="utf-8") as f:
        text = f.read()
except OSError as exc:
    sys.exit(f"make install: cannot read the config to install: {exc}")
value = data_dir if re.fullmatch(r"[\w./-]+", data_dir) else json.dumps(data_dir)
text, n = re.subn(r"^(\s*data_dir:[ \t]*)[^\n]*$", lambda m: m.group(1) + value, text,
                  flags=re.M)
if n != 1:
    sys.exit(f"make install: {src}: expected one `data_dir:` line (producer.data_dir), found {n}")
# segment.owner: the installed units run the producer as user tradingd (readers refuse others)
text, n = re.subn(r"^(\s*owner:[ \t]*)null[ \t]*$", lambda m: m.group(1) + "tradingd", text,
                  flags=re.M)
if n != 1:
    sys.exit(f"make install: {src}: expected one `owner: null` line (segment.owner), found {n}")
if (yaml.safe_load(text) or {}).get("segment", {}).get("owner") != "tradingd":
    sys.exit(f"make install: {src}: rewriting owner did not set segment.owner")
got = (yaml.safe_load(text) or {}).get("producer", {}).get("data_dir")
if got != data_dir:
    sys.exit(f"make install: {src}: rewriting data_dir gave producer.data_dir={got!r}")
with open(dst, "w", encoding="utf-8") as f:
    f.write(text)
EOF
    chmod 0644 "$new"
    # The pristine default, kept with the venv: uninstall tells an edited config from it.
    mkdir -p "$ROOT/share/tradingd"
    install -m 0644 "$new" "$ROOT/share/tradingd/tradingd.yaml.default"
    if [ -f "$target" ] && ! cmp -s "$new" "$target"; then
        mv -f "$new" "$target.dist"
        say CONFIG "$target kept (it differs: the new default is $target.dist)"
    else
        mv -f "$new" "$target"
        say CONFIG "$target (producer.data_dir: $TD_DATADIR)"
    fi
    if [ -z "$DESTDIR" ]; then
        "$ROOT/bin/python" -m tradingd.daemon.configcheck "$target" >/dev/null \
            || die "$target does not validate (problems listed above); fix it and rerun"
    fi
}

# The gateway's bearer token (LoadCredential=gateway-token:$TD_CONFDIR/gateway-token in its
# unit): created once, random, readable by root only; an existing token is kept.
install_gateway_token() {
    token=$DESTDIR$TD_CONFDIR/gateway-token
    if [ -s "$token" ]; then
        say TOKEN "$token kept"
        return 0
    fi
    mkdir -p "$DESTDIR$TD_CONFDIR"
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$token.tmp" && echo >> "$token.tmp")
    mv -f "$token.tmp" "$token"
    say TOKEN "$token (new random bearer token for tradingd-gateway clients)"
}

activate() {
    if systemd_running; then
        say SYSUSERS "systemd-sysusers $TD_SYSUSERSDIR/tradingd.conf"
        systemd-sysusers "$TD_SYSUSERSDIR/tradingd.conf"
        say RELOAD "systemctl daemon-reload"
        systemctl daemon-reload
        # An upgrade: restart what was running on the old venv (no-op when stopped).
        systemctl try-restart $UNITS $BRIDGE_UNITS
        echo "installed. Start with: systemctl enable --now $UNITS"
        echo "(multi-host: systemctl enable --now tradingd-bridge-publish or -mirror; docs/multi-host.md)"
    elif [ -z "$DESTDIR" ]; then
        echo "installed. systemd is not running here: the users are created at the next boot"
        echo "(systemd-sysusers.service), or now with: systemd-sysusers $TD_SYSUSERSDIR/tradingd.conf"
    else
        echo "staged under $DESTDIR (nothing reloaded, no users created)"
    fi
}

do_install() {
    [ "$(id -u)" = 0 ] || [ -n "$DESTDIR" ] \
        || die "installs into $PREFIX and $SYSCONFDIR: run it as root (or stage it with DESTDIR=)"
    [ -f "$SRC/config/tradingd.yaml" ] || die "$SRC/config/tradingd.yaml is missing"
    check_paths
    build_venv
    install_tools
    install_data
    install_units
    install_config
    install_nats_credentials
    install_gateway_token
    activate
}

# The config as installed is removed; an edited one (it differs from the default this install
# wrote, or that default is unknown) is kept as tradingd.yaml.rpmsave, as rpm does.
remove_config() {
    conf=$DESTDIR$TD_CONFDIR/tradingd.yaml
    default=$ROOT/share/tradingd/tradingd.yaml.default
    if [ -f "$conf" ]; then
        if [ -f "$default" ] && cmp -s "$conf" "$default"; then
            rm -f "$conf"
        else
            mv -f "$conf" "$conf.rpmsave"
            say KEPT "$conf.rpmsave (it was edited: remove it if it is not wanted)"
        fi
    fi
    rm -f "$conf.dist"
    rmdir "$DESTDIR$TD_CONFDIR" 2>/dev/null || true
}

do_uninstall() {
    [ "$(id -u)" = 0 ] || [ -n "$DESTDIR" ] || die "run it as root (or with the DESTDIR= it was staged with)"
    check_paths
    if systemd_running; then
        say STOP "$UNITS $BRIDGE_UNITS"
        systemctl stop $UNITS $BRIDGE_UNITS 2>/dev/null || true
        systemctl disable --quiet $UNITS $BRIDGE_UNITS 2>/dev/null || true
    fi
    for unit in $UNITS $BRIDGE_UNITS; do
        rm -f "$DESTDIR$TD_UNITDIR/$unit"
    done
    # the credentials file only if it is still the empty one install made (never a secret)
    if [ "$(cat "$DESTDIR$TD_CONFDIR/nats.cred" 2>/dev/null)" = "$NATS_CRED_PLACEHOLDER" ]; then
        rm -f "$DESTDIR$TD_CONFDIR/nats.cred"
    fi
    rm -f "$DESTDIR$TD_SYSUSERSDIR/tradingd.conf"
    rm -f "$DESTDIR$TD_CONFDIR/gateway-token"
    remove_config
    if [ -e "$DESTDIR$TD_DATADIR/$MARKER" ]; then
        rm -rf "$DESTDIR$TD_DATADIR"
    fi
    if [ -e "$ROOT/$MARKER" ]; then
        say REMOVE "$ROOT"
        rm -rf "$ROOT"
    fi
    if systemd_running; then
        systemctl daemon-reload
        systemctl reset-failed $UNITS $BRIDGE_UNITS 2>/dev/null || true
    fi
    echo "uninstalled. The users tradingd and tradingd-consumer are kept (system users are never"
    echo "deleted, so their IDs are not reused for other files); remove them with userdel if wanted."
}

case "${1:-}" in
    install) do_install ;;
    uninstall) do_uninstall ;;
    *) die "usage: install.sh install|uninstall" ;;
esac
