"""``exchange.group`` (issue 14, part 2): a hub unit's tree is given to that unit's DMS group,
so one unit's DMS user cannot read another unit's inbox."""

from __future__ import annotations

import grp
import os
import stat

import pytest

from connector.dms.folder.layout import ExchangeLayout
from connector.errors import ConfigError


def other_group() -> grp.struct_group:
    """A group we may give folders to that is not our own primary group."""
    mine = os.getgid()
    for gid in ([g.gr_gid for g in grp.getgrall()] if os.geteuid() == 0 else os.getgroups()):
        if gid != mine:
            return grp.getgrgid(gid)
    pytest.skip("no second group to give the folders to (run as root or in two groups)")


def test_the_unit_tree_belongs_to_its_group_and_inboxes_are_not_world_readable(tmp_path):
    group = other_group()
    layout = ExchangeLayout(tmp_path / "000.00.00.H02")
    layout.prepare(group.gr_name)
    for path in [layout.root, *(path for path, _ in layout.directories())]:
        info = os.stat(path)
        assert info.st_gid == group.gr_gid, path
        assert info.st_mode & stat.S_ISGID and not info.st_mode & stat.S_IROTH, path
    # what the DMS or the connector creates inside keeps the group (setgid)
    (layout.inbox / "2026-12-07").mkdir()
    assert os.stat(layout.inbox / "2026-12-07").st_gid == group.gr_gid


def test_an_unknown_group_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        ExchangeLayout(tmp_path / "x").prepare("no-such-group-edxml")
    assert "exchange.group" in caught.value.one_line()
    assert "groupadd no-such-group-edxml" in caught.value.one_line()
