#!/bin/sh
# Boot a real systemd as PID 1 of fresh PID, mount, UTS and cgroup namespaces, for the tests in
# this directory (recipe and hazards: ../shared/notes/real-systemd-in-tests.md).
#
# Run by tests/systemd/sandbox.py as
#   setsid unshare --pid --fork --mount --uts --mount-proc --propagation=private \
#       sh sandbox-boot.sh stage1 NAME WORKDIR REPO
# Everything this script mounts lives in the private mount namespace and disappears with it.
# Writes that must not reach the host go to tmpfs/overlays:
#   /run, /dev/shm, /tmp          private tmpfs (systemd state, segments, PrivateTmp= dirs)
#   /etc, /opt, /var              overlays whose upper layer is in /run (users created by
#                                 systemd-sysusers, `make install`, the journal all stay inside)
#   /etc/systemd/system           empty tmpfs: the host's enablement links (timers, postgresql,
#                                 timesyncd...) are invisible; only `make install` puts units here
#   /sys/fs/cgroup                the cgroup2 hierarchy, rooted (cgroup namespace) at the
#                                 sandbox's own cgroup /NAME, which the harness removes afterwards
# systemd only sees SYSTEMD_UNIT_PATH=/etc/systemd/system:/run/sandbox/units, where units/ holds
# copies of the few stock units it needs plus sandbox.target.
set -eu

stage=$1
name=$2
workdir=$3
repo=$4

case "$stage" in
stage1)
    mount --make-rprivate /
    # A cgroup of our own in the (host's) cgroup2 hierarchy; then a cgroup namespace rooted
    # there, so everything systemd creates lands under /NAME and nowhere else. The v1
    # hierarchies (memory limits of whatever runs us) are left as they are.
    cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
    [ -n "$cg2" ] || { echo "sandbox-boot: no cgroup2 hierarchy mounted" >&2; exit 1; }
    mkdir "$cg2/$name"
    echo 0 > "$cg2/$name/cgroup.procs"
    exec unshare --cgroup sh "$0" stage2 "$name" "$workdir" "$repo"
    ;;
stage2)
    ;;
*)
    echo "sandbox-boot: unknown stage $stage" >&2
    exit 64
    ;;
esac

mount -t cgroup2 cgroup2 /sys/fs/cgroup

mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/sandbox
mount -t tmpfs -o mode=1777 tmpfs /dev/shm

for d in etc opt var; do
    mkdir -p "/run/sandbox/overlay/$d/upper" "/run/sandbox/overlay/$d/work"
    mount -t overlay overlay \
        -o "lowerdir=/$d,upperdir=/run/sandbox/overlay/$d/upper,workdir=/run/sandbox/overlay/$d/work" \
        "/$d"
done
mount -t tmpfs -o mode=0755 tmpfs /etc/systemd/system

# Volatile journal (never the host's /var/log/journal), no rate limit, not the host's kernel
# log; quick stop timeouts.
mkdir -p /etc/systemd/journald.conf.d /etc/systemd/system.conf.d
printf '[Journal]\nStorage=volatile\nRateLimitBurst=0\nReadKMsg=no\n' > /etc/systemd/journald.conf.d/sandbox.conf
printf '[Manager]\nDefaultTimeoutStopSec=10s\n' > /etc/systemd/system.conf.d/sandbox.conf

cp -R "$workdir/units" /run/sandbox/units

# The checkout stays reachable at /run/sandbox/src even if it lives under /tmp, which is
# covered next (PrivateTmp= directories must not land in the host's /tmp).
mkdir -p /run/sandbox/src
mount --bind "$repo" /run/sandbox/src
mount -t tmpfs -o mode=1777 tmpfs /tmp

# (systemd sets the hostname from /etc/hostname: in the private UTS namespace, harmlessly.)
export container=unshare
export SYSTEMD_UNIT_PATH=/etc/systemd/system:/run/sandbox/units
# systemd's own messages (Started..., Watchdog timeout...) go to the journal, as on a real host
# (to the console, i.e. the harness's boot.log, until journald is up).
exec /lib/systemd/systemd --system --unit=sandbox.target --log-target=journal --log-level=info
