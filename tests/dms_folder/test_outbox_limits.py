"""A hostile or broken DMS cannot make the connector read a huge metadata file: document.yaml and
status files over ``exchange.max_metadata_mb`` are refused unread, the limit in the reason."""

from __future__ import annotations

import os

from connector.dms.folder.side import FolderSide
from connector.errors import InputError

from .conftest import drop_bundle, drop_file, minimal_metadata

LIMIT = 4096


def _huge(path, size: int) -> None:
    """A sparse file of ``size`` bytes: no disk used, but far too much to read."""
    with open(path, "wb") as handle:
        handle.truncate(size)


def test_an_oversized_document_yaml_is_refused_with_the_limit(exchange):
    side = FolderSide(exchange, instance="node1", max_metadata_bytes=LIMIT)
    try:
        bundle = drop_bundle(exchange / "outbox", "huge", {"a.pdf": b"%PDF"}, None)
        _huge(bundle / "document.yaml.part", 100 * 1024 * 1024)
        os.rename(bundle / "document.yaml.part", bundle / "document.yaml")
        [item] = side.claim_ready()
        assert isinstance(item.problem, InputError)
        text = item.problem.one_line()
        assert "104,857,600 bytes" in text and f"{LIMIT:,} bytes" in text
        assert "exchange.max_metadata_mb" in text and "huge/document.yaml" in text
    finally:
        side.close()


def test_an_oversized_status_file_is_refused_with_the_limit(exchange):
    side = FolderSide(exchange, instance="node1", max_metadata_bytes=LIMIT)
    try:
        path = exchange / "outbox" / "statuses" / "big.yaml"
        drop_file(path, b"code: '03'\n" + b"#" * (LIMIT + 1))
        [item] = side.claim_ready()
        assert isinstance(item.problem, InputError)
        assert f"over the limit of {LIMIT:,} bytes" in item.problem.one_line()
    finally:
        side.close()


def test_metadata_at_the_limit_is_read(exchange):
    side = FolderSide(exchange, instance="node1", max_metadata_bytes=LIMIT)
    try:
        bundle = drop_bundle(exchange / "outbox", "fine", {"a.pdf": b"%PDF"},
                             minimal_metadata(attachments=[{"file": "a.pdf"}]))
        assert (bundle / "document.yaml").stat().st_size <= LIMIT
        [item] = side.claim_ready()
        assert item.problem is None and item.metadata is not None
    finally:
        side.close()
