"""Config keys of the hostile-host work: modes others could write, the owner account."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest
from hostile_support import producer, write_config

from tradingd import constants as C
from tradingd.daemon.config import load_config, resolve_owner
from tradingd.errors import ConfigError


@pytest.mark.parametrize("mode", ['"0666"', '"0660"', '"0642"', '"0622"', "0777"])
def test_group_or_world_writable_segment_modes_are_refused(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"segment: {{mode: {mode}}}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:1: segment\.mode: .*within 0644"):
        load_config(path)


def test_owner_resolves_names_and_uids(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    me = pwd.getpwuid(os.geteuid()).pw_name
    for written, uid in ((me, os.geteuid()), ("0", 0), ("null", os.geteuid())):
        path.write_text(f"segment: {{owner: {written}}}\n")
        assert resolve_owner(load_config(path)) == uid
    path.write_text("segment: {owner: no-such-user-td12}\n")
    with pytest.raises(ConfigError, match=r"segment\.owner: no user named 'no-such-user-td12'"):
        resolve_owner(load_config(path))


def test_producer_with_an_unknown_owner_exits_78(segment_name: str, workdir: Path) -> None:
    res = producer(write_config(workdir, segment={"owner": "no-such-user-td12"}), segment_name)
    assert res.returncode == C.EXIT_CONFIG and "segment.owner" in res.stderr, res.stderr
    assert not os.path.lexists(f"/dev/shm/{segment_name}")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setpriv drops its capabilities)")
def test_segment_group_the_producer_is_not_in_is_77_and_removes_the_file(
        segment_name: str, workdir: Path) -> None:
    """Used to be a PermissionError traceback from fchown (exit 1, a restart loop)."""
    group = grp.getgrgid(1).gr_name  # "daemon" on Debian: root is not a member
    cfg = write_config(workdir, segment={"group": group})
    # root without CAP_CHOWN: like a producer account outside segment.group
    res = producer(cfg, segment_name, prefix=["setpriv", "--bounding-set=-all"])
    assert res.returncode == C.EXIT_NOPERM, res.stderr
    assert f"cannot give the segment to group {group} (gid 1)" in res.stderr, res.stderr
    assert not os.path.lexists(f"/dev/shm/{segment_name}")
