"""The EXCHANGE folder tree: its paths, and the checks made before the connector starts.

The tree is a contract with the DMS (``docs/folder-contract.md``). Two properties are vital and
checked at start rather than discovered at the first failed rename: the connector can write
everywhere it needs to, and ``work/``, ``sent/`` and ``failed/`` are on the same filesystem as
``outbox/`` — claiming and archiving are renames, and only a rename within one filesystem is
atomic. A copy-and-delete across filesystems could hand one item to two processes or lose it in
a crash, so the connector refuses to start instead.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from connector import fsutil
from connector.errors import ConfigError

SHARED_DIR_MODE = 0o2770
"""outbox/ and inbox/: the DMS (group ``edxml``) writes and removes there; setgid keeps the group."""
READ_DIR_MODE = 0o2750
"""sent/, failed/, quarantine/, work/: the DMS reads, only the connector writes."""


@dataclass(frozen=True)
class ExchangeLayout:
    """Paths of one EXCHANGE root."""

    root: Path

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def outbox_statuses(self) -> Path:
        return self.outbox / "statuses"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def work_statuses(self) -> Path:
        return self.work / "statuses"

    @property
    def sent(self) -> Path:
        return self.root / "sent"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def statuses_log(self) -> Path:
        return self.inbox / "statuses.jsonl"

    @property
    def events_log(self) -> Path:
        return self.inbox / "events.jsonl"

    def directories(self) -> list[tuple[Path, int]]:
        """Every directory of the tree with the mode it gets when the connector creates it."""
        return [
            (self.outbox, SHARED_DIR_MODE),
            (self.outbox_statuses, SHARED_DIR_MODE),
            (self.work, READ_DIR_MODE),
            (self.work_statuses, READ_DIR_MODE),
            (self.sent, READ_DIR_MODE),
            (self.sent / "statuses", READ_DIR_MODE),
            (self.failed, READ_DIR_MODE),
            (self.failed / "statuses", READ_DIR_MODE),
            (self.inbox, SHARED_DIR_MODE),
            (self.quarantine, READ_DIR_MODE),
        ]

    def prepare(self, group: str | None = None) -> list[str]:
        """Create what is missing, check what exists; return warnings worth logging.
        ``group`` (a hub unit's ``exchange.group``): the tree is given to that group, so that
        only that unit's DMS user (a member of it) can reach its folders.

        Raises :class:`ConfigError` when the tree cannot be used: a path that is not a
        directory, a directory the connector cannot write, or ``work/`` (or ``sent/``,
        ``failed/``) on another filesystem than ``outbox/``.
        """
        warnings: list[str] = []
        if not self.root.exists():
            fsutil.ensure_directory(self.root, READ_DIR_MODE)
        if not self.root.is_dir():
            raise ConfigError("the exchange root is not a directory", file=str(self.root),
                              hint="set agency_side.folder.root to a directory")
        for path, mode in self.directories():
            if path.exists() and not path.is_dir():
                raise ConfigError(f"{path.name} exists but is not a directory", file=str(path),
                                  hint="move it away; the connector creates the folder")
            if fsutil.ensure_directory(path, mode):
                continue
            if not os.access(path, os.W_OK | os.X_OK):
                raise ConfigError("the connector cannot write here", file=str(path),
                                  hint="give the connector's user write access (owner or group edxml)")
            warning = self._fix_mode(path, mode)
            if warning:
                warnings.append(warning)
        if group is not None:
            self._give_to_group(group)
        self.check_same_filesystem()
        return warnings

    def _give_to_group(self, group: str) -> None:
        """Give the root and every folder of the tree to ``group`` (setgid keeps it for what the
        DMS and the connector create inside). Refused with the fix when the group does not
        exist or the connector's user may not give its folders to it."""
        import grp  # POSIX only, like the folder contract's permissions

        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"exchange.group: no group {group!r} on this host",
                              file=str(self.root),
                              hint=f"create it (groupadd {group}) and add the unit's DMS user "
                                   "and the connector's user to it") from None
        for path in [self.root, *(path for path, _ in self.directories())]:
            if os.stat(path).st_gid == gid:
                continue
            try:
                os.chown(path, -1, gid)
            except PermissionError:
                raise ConfigError(f"exchange.group: cannot give this folder to group {group!r}",
                                  file=str(path),
                                  hint=f"add the connector's user to group {group} (usermod -aG "
                                       f"{group} edxml-connector), or chgrp the tree once as "
                                       "root") from None

    def check_same_filesystem(self) -> None:
        """Refuse a tree where claiming or archiving would not be an atomic rename."""
        outbox_device = fsutil.device_of(self.outbox)
        for path in (self.outbox_statuses, self.work, self.work_statuses, self.sent, self.failed):
            if fsutil.device_of(path) != outbox_device:
                raise ConfigError(
                    f"{path.name}/ is on another filesystem than outbox/; the connector claims and "
                    "archives items by atomic rename, which only works within one filesystem",
                    file=str(path),
                    hint="put outbox/, work/, sent/ and failed/ on the same filesystem (no separate "
                         "mount or symlink to another disk for any of them)")

    @staticmethod
    def _fix_mode(path: Path, mode: int) -> str | None:
        """Bring group bits and setgid up to ``mode`` when we own the directory; otherwise say
        what is wrong (an administrator set it up differently, which may be deliberate)."""
        current = stat.S_IMODE(os.stat(path).st_mode)
        wanted_bits = mode & (stat.S_ISGID | stat.S_IRWXG)
        if current & wanted_bits == wanted_bits:
            return None
        if os.stat(path).st_uid == os.geteuid():
            os.chmod(path, current | wanted_bits)
            return f"{path}: mode {current:04o} changed to {current | wanted_bits:04o}"
        return (f"{path}: mode {current:04o}, expected at least {wanted_bits:04o} so that the DMS "
                "(group edxml) can use it")
