"""The agency directory in the journal: synced from the axis (the whole list with old codes
first, then only the changes), searched with or without diacritics, the old cache file
imported once; a recipient given by an old code goes to its current code, with a warning in
the log and the receipt, and the package is not rewritten."""

from __future__ import annotations

import json

import pytest

from connector.axis.agency_directory import AgencyDirectory
from connector.axis.client import Agency
from connector.axis.errors import TransientAxisError
from connector.journal import Journal

from .conftest import PDF, A, B, document_metadata, drop_bundle

OLD_B = "000.00.12.H41"


def agency(code: str, name: str = "", old_code: str = "", deleted: bool = False) -> Agency:
    return Agency(id="", code=code, name=name, mail="", pid="", raw={}, old_code=old_code,
                  deleted=deleted)


class FakeDirectoryClient:
    """What the directory asks of the axis client, answered from lists (no HTTP here: the
    client's own calls are tested against the simulator in tests/axis)."""

    def __init__(self, full: list[Agency], *, qd20: bool = True) -> None:
        self.full, self.qd20, self.changes = full, qd20, []
        self.calls: list[str] = []

    def list_agencies_qd20(self):
        self.calls.append("qd20")
        if not self.qd20:
            raise TransientAxisError("HTTP 404", operation="getAgenciesListQD20")
        return self.full

    def list_agencies(self):
        self.calls.append("plain")
        return [agency(a.code, a.name) for a in self.full]

    def synchronize_units(self, since):
        self.calls.append("changes")
        return self.changes


def test_sync_full_then_changes_and_find_without_diacritics(tmp_path):
    with Journal.open(f"sqlite:///{tmp_path / 'j.db'}") as journal:
        client = FakeDirectoryClient([agency(A, "Văn phòng Chính phủ"),
                                      agency(B, "Ủy ban nhân dân tỉnh Nghệ An", old_code=OLD_B),
                                      agency("000.00.00.H14", "UBND Tỉnh Hòa Bình")])
        directory = AgencyDirectory(client, journal.directory)
        assert not directory.loaded and directory.unknown(["000.00.00.Z99"]) == []  # axis judges
        first = directory.refresh()
        assert (first.kind, first.total, client.calls) == ("full (QD20)", 3, ["qd20"])
        assert [a.code for a in directory.find("uy ban nghe an")] == [B]
        assert [a.code for a in directory.find("ỦY BAN Nghệ")] == [B]
        assert [a.code for a in directory.find(OLD_B)] == [B]  # by the old code too
        resolution = directory.resolve([OLD_B, A, "000.00.00.Z99"])
        assert resolution.current == [B, A, "000.00.00.Z99"]
        assert resolution.renamed == {OLD_B: B} and resolution.unknown == ["000.00.00.Z99"]

        client.changes = [agency("000.00.00.H14", deleted=True), agency("000.00.01.H41", "Sở Nội vụ")]
        second = directory.refresh()
        assert (second.kind, second.agencies, second.total) == ("changes", 2, 3)
        assert client.calls == ["qd20", "changes"]
        assert directory.unknown(["000.00.00.H14", "000.00.01.H41"]) == ["000.00.00.H14"]
        assert directory.refresh(full=True).total == 3 and client.calls[-1] == "qd20"


def test_an_axis_without_qd20_gives_the_plain_list(tmp_path):
    with Journal.open(f"sqlite:///{tmp_path / 'j.db'}") as journal:
        client = FakeDirectoryClient([agency(A, "Văn phòng Chính phủ", old_code="X")], qd20=False)
        result = AgencyDirectory(client, journal.directory).refresh()
        assert (result.kind, client.calls) == ("full", ["qd20", "plain"])
        assert journal.directory.get(A).old_code is None


def test_the_old_cache_file_is_imported_once(tmp_path):
    cache = tmp_path / "agencies.json"
    cache.write_text(json.dumps({"loaded_at": "2026-12-01T00:00:00+00:00",
                                 "agencies": {A: "Văn phòng Chính phủ", B: "UBND Nghệ An"}}))
    with Journal.open(f"sqlite:///{tmp_path / 'j.db'}") as journal:
        directory = AgencyDirectory(FakeDirectoryClient([]), journal.directory,
                                    legacy_cache_file=cache)
        assert directory.loaded and directory.name_of(B) == "UBND Nghệ An"
        assert not cache.exists() and (tmp_path / "agencies.json.migrated").exists()
        assert journal.directory.synced_at().isoformat() == "2026-12-01T00:00:00+00:00"


def test_a_recipient_by_its_old_code_goes_to_the_current_one(make_agency, simulator):
    a, b = make_agency("A"), make_agency("B")
    simulator.store.register_agency({"code": B, "name": "UBND Tỉnh Nghệ An", "old_code": OLD_B})
    a.runtime.directory.refresh(full=True)
    drop_bundle(a.exchange / "outbox", "cv7", document_metadata("7", to=OLD_B), {"Công văn số 101.pdf": PDF})
    a.cycle()
    [record] = a.journal.outgoing.list_outgoing()
    assert record.state.value == "sent" and record.recipients == [B]
    receipt = json.loads((a.exchange / "sent" / "cv7.receipt.json").read_text())
    assert receipt["warnings"] == [f"recipient {OLD_B} is an old code: sent to its current code {B}"]
    assert list(receipt["recipients"]) == [B]
    stored = open(record.package_path, encoding="utf-8").read()
    assert OLD_B in stored  # the signed package keeps what the DMS wrote
    b.poll()
    assert [r.document_id for r in b.journal.incoming.list_incoming()] == [record.document_id]


def test_agencies_sync_and_find_commands(make_agency, simulator, capsys):
    from connector.cli import main

    a = make_agency("A")
    simulator.store.register_agency({"code": "000.00.01.H41", "name": "Sở Nội vụ tỉnh Nghệ An",
                                     "old_code": "000.00.21.H41"})
    assert main(["agencies", "sync", "--config", str(a.config), "--full"]) == 0
    out = capsys.readouterr().out
    assert "\nfull (QD20): 3 agencies written; 3 in the directory (synced " in "\n" + out
    assert main(["agencies", "sync", "--config", str(a.config)]) == 0
    assert "\nchanges: " in "\n" + capsys.readouterr().out
    assert main(["agencies", "find", "so noi vu", "--config", str(a.config)]) == 0
    out = capsys.readouterr().out
    assert "000.00.01.H41" in out and "Sở Nội vụ tỉnh Nghệ An" in out and "old code 000.00.21.H41" in out
    assert main(["agencies", "find", "000.00.21.H41", "--json", "--config", str(a.config)]) == 0
    [found] = json.loads(capsys.readouterr().out)
    assert found["code"] == "000.00.01.H41"
    assert main(["agencies", "find", "nowhere at all", "--config", str(a.config)]) == 1
    assert "no agency matches 'nowhere at all' among 3" in capsys.readouterr().out


def test_a_sync_that_breaks_halfway_keeps_the_previous_list(tmp_path):
    def broken_rows():
        yield agency(A, "Văn phòng Chính phủ")
        raise TransientAxisError("getAgenciesListQD20 reply: not JSON", operation="getAgenciesListQD20")

    with Journal.open(f"sqlite:///{tmp_path / 'j.db'}") as journal:
        client = FakeDirectoryClient([agency(A, "Văn phòng Chính phủ"), agency(B, "UBND Nghệ An")])
        directory = AgencyDirectory(client, journal.directory)
        directory.refresh()
        client.full = broken_rows()
        with pytest.raises(TransientAxisError, match="not JSON"):
            directory.refresh(full=True)
        assert journal.directory.count() == 2 and directory.name_of(B) == "UBND Nghệ An"


def test_a_ready_package_to_an_old_code_goes_to_the_current_one_unchanged(make_agency, simulator):
    from connector.axis.sim.samples import make_document

    a, b = make_agency("A"), make_agency("B")
    simulator.store.register_agency({"code": B, "name": "UBND Tỉnh Nghệ An", "old_code": OLD_B})
    a.runtime.directory.refresh(full=True)
    staging = a.exchange / "ready.edxml.part"
    staging.write_bytes(make_document(A, [OLD_B], document_id=f"{A},2026/12/07,8/VPCP"))
    staging.rename(a.exchange / "outbox" / "ready.edxml")
    a.cycle()
    [record] = a.journal.outgoing.list_outgoing()
    assert record.state.value == "sent", record.last_error
    assert record.recipients == [B] and record.meta["renamed"] == {OLD_B: B}
    receipt = json.loads((a.exchange / "sent" / "ready.receipt.json").read_text())
    assert receipt["warnings"] == [f"recipient {OLD_B} is an old code: sent to its current code {B}"]
    b.poll()
    assert [r.document_id for r in b.journal.incoming.list_incoming()] == [f"{A},2026/12/07,8/VPCP"]


def test_found_codes_are_remembered_until_a_refresh_and_unknown_ones_asked_again(tmp_path):
    import datetime as dt

    class Counting:
        def __init__(self, records) -> None:
            self.records, self.asked = records, []

        def resolve(self, codes):
            self.asked.append(list(codes))
            return self.records.resolve(codes)

        def __getattr__(self, name):
            return getattr(self.records, name)

    with Journal.open(f"sqlite:///{tmp_path / 'j.db'}") as journal:
        client = FakeDirectoryClient([agency(A, "VPCP"), agency(B, "Nghệ An", old_code=OLD_B)])
        records = Counting(journal.directory)
        directory = AgencyDirectory(client, records)
        directory.refresh()
        for _ in range(3):  # what one document asks: once to the journal
            assert directory.resolve([OLD_B, A]).current == [B, A]
        assert records.asked == [[OLD_B, A]]
        new = "000.00.00.Q01"
        assert directory.unknown([new]) == [new]
        # `agencies sync` run by the operator adds it in the journal: seen at once
        journal.directory.apply_changes([agency(new, "Đơn vị mới")],
                                        synced_at=dt.datetime.now(dt.timezone.utc))
        assert directory.unknown([new]) == []
        client.changes = [agency(A, deleted=True)]
        directory.refresh()  # this process's own sync drops what it remembered
        assert directory.unknown([A]) == [A]
