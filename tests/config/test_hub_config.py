"""A hub's configuration (issue 14): the shared sections once, the units under ``agencies:``
and/or one file each in ``agencies_dir:``; each unit checked as a whole agency's file would be,
and every error naming the unit's file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connector.config import load_config
from connector.config_units import unit_files
from connector.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def unit(organ_id: str, tmp_path: Path, **extra) -> dict:
    secret = tmp_path / f"{organ_id}.secret"
    secret.write_text("s3cret-" + organ_id + "\n")
    secret.chmod(0o600)
    data = {"agency": {"organ_id": organ_id, "name": f"Unit {organ_id}"},
            "axis": {"secret_file": str(secret)},
            "certificate": {"p12_file": f"/etc/units/{organ_id}.p12"}}
    data.update(extra)
    return data


def shared(tmp_path: Path, **extra) -> dict:
    data = {"axis": {"endpoint": "http://127.0.0.1:9", "read_timeout": 7},
            "journal": {"url": f"sqlite:///{tmp_path}/journal.db"},
            "state_dir": str(tmp_path / "state"),
            "exchange": {"root": str(tmp_path / "exchange")}}
    data.update(extra)
    return data


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_units_from_the_list_and_the_folder_share_the_rest(tmp_path):
    folder = tmp_path / "agencies.d"
    write(folder / "b.yaml", unit("000.00.00.H02", tmp_path, exchange={"group": "edxml-h02"}))
    write(folder / "a.yml", unit("000.00.00.H03", tmp_path, axis={
        "systemid": "sys-h03", "secret_file": str(tmp_path / "000.00.00.H02.secret")}))
    write(folder / ".c.yaml", unit("000.00.00.H09", tmp_path))  # hidden: an editor's file
    (folder / "notes.txt").write_text("not a unit")
    main = write(tmp_path / "connector.yaml", shared(
        tmp_path, agencies=[unit("000.00.00.H01", tmp_path)], agencies_dir=str(folder)))

    settings = load_config(main)

    units = settings.units
    assert [u.agency.organ_id for u in units] == ["000.00.00.H01", "000.00.00.H03", "000.00.00.H02"]
    assert settings is units[0] and settings.is_hub
    assert all(u.axis.read_timeout == 7 and u.journal.url == units[0].journal.url for u in units)
    assert [u.systemid for u in units] == ["000.00.00.H01", "sys-h03", "000.00.00.H02"]
    assert units[0].axis.resolved_secret().get_secret_value() == "s3cret-000.00.00.H01"
    # each unit's folders under its own OrganId, with its own group when it names one
    assert [u.exchange.root for u in units] == [tmp_path / "exchange" / u.agency.organ_id
                                                for u in units]
    assert units[2].exchange.group == "edxml-h02" and units[0].exchange.group is None
    # a hub polls active units every 30 s and idle ones every 10 minutes unless told otherwise
    assert (units[0].schedules.axis_poll_seconds, units[0].schedules.idle_poll_seconds) == (30, 600)
    assert [p.name for p in unit_files(folder)] == ["a.yml", "b.yaml"]


def test_a_single_agency_file_is_a_hub_of_one(tmp_path):
    single = unit("000.00.00.H01", tmp_path)
    data = shared(tmp_path, agency=single["agency"], certificate=single["certificate"])
    data["axis"].update(single["axis"])
    settings = load_config(write(tmp_path / "connector.yaml", data))
    assert settings.units == [settings] and not settings.is_hub
    assert settings.schedules.axis_poll_seconds == 60 and settings.schedules.idle_poll_seconds is None


def test_a_unit_may_not_set_what_is_shared_and_the_error_names_its_file(tmp_path):
    folder = tmp_path / "agencies.d"
    bad = write(folder / "h02.yaml", unit("000.00.00.H02", tmp_path, journal={"url": "sqlite://"}))
    main = write(tmp_path / "connector.yaml", shared(tmp_path, agencies_dir=str(folder)))
    with pytest.raises(ConfigError) as caught:
        load_config(main)
    line = caught.value.one_line()
    assert str(bad) in line and "journal" in line and "main file" in line

    write(bad, unit("000.00.00.H02", tmp_path, axis={"endpoint": "http://127.0.0.1:1"}))
    with pytest.raises(ConfigError) as caught:
        load_config(main)
    assert "axis.endpoint" in caught.value.one_line() and str(bad) in caught.value.one_line()


def test_a_unit_is_validated_like_an_agency_file(tmp_path):
    folder = tmp_path / "agencies.d"
    bad = write(folder / "h02.yaml", unit("000.00.00.H02", tmp_path))
    data = yaml.safe_load(bad.read_text())
    data["agency"]["organ_id"] = "H02"  # not an OrganId
    write(bad, data)
    main = write(tmp_path / "connector.yaml", shared(tmp_path, agencies_dir=str(folder)))
    with pytest.raises(ConfigError) as caught:
        load_config(main)
    assert "agency.organ_id" in caught.value.one_line() and str(bad) in caught.value.one_line()

    missing_secret = unit("000.00.00.H02", tmp_path)
    missing_secret["axis"] = {"secret_file": str(tmp_path / "nowhere.secret")}
    write(bad, missing_secret)
    with pytest.raises(ConfigError) as caught:
        load_config(main)
    assert "axis.secret_file" in caught.value.one_line() and str(bad) in caught.value.one_line()


def test_two_units_with_one_organ_id_or_one_systemid_are_refused(tmp_path):
    folder = tmp_path / "agencies.d"
    write(folder / "one.yaml", unit("000.00.00.H02", tmp_path))
    write(folder / "two.yaml", unit("000.00.00.H02", tmp_path))
    main = write(tmp_path / "connector.yaml", shared(tmp_path, agencies_dir=str(folder)))
    with pytest.raises(ConfigError) as caught:
        load_config(main)
    assert "already the unit of" in caught.value.one_line()
    assert str(folder / "two.yaml") in caught.value.one_line()

    write(folder / "two.yaml", unit("000.00.00.H03", tmp_path, axis={
        "systemid": "000.00.00.H02", "secret_file": str(tmp_path / "000.00.00.H02.secret")}))
    with pytest.raises(ConfigError) as caught:
        load_config(main)
    assert "systemid 000.00.00.H02 is already used" in caught.value.one_line()


def test_an_empty_hub_and_a_missing_folder_are_clear_errors(tmp_path):
    main = write(tmp_path / "connector.yaml", shared(tmp_path, agencies=[]))
    with pytest.raises(ConfigError, match="no units"):
        load_config(main)
    main = write(tmp_path / "connector.yaml", shared(tmp_path, agencies_dir="agencies.d"))
    with pytest.raises(ConfigError, match="is not a folder"):
        load_config(main)
    (tmp_path / "agencies.d").mkdir()  # relative to the main file
    write(tmp_path / "agencies.d" / "x.yaml", unit("000.00.00.H05", tmp_path))
    assert load_config(main).agency.organ_id == "000.00.00.H05"


def test_the_shipped_hub_examples_load(tmp_path, monkeypatch):
    """config/hub.example.yaml with config/agencies.d.example as its folder: the keys they
    document are the keys the connector takes (paths of secrets redirected to real files)."""
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    for name in ("axis-secret-H01", "key-password-H01"):
        (tmp_path / name).write_text("x\n")
    data = yaml.safe_load((REPO / "config" / "hub.example.yaml").read_text(encoding="utf-8"))
    data["agencies_dir"] = str(REPO / "config" / "agencies.d.example")
    main = write(tmp_path / "connector.yaml", data)
    settings = load_config(main, resolve_secrets=False)
    assert [u.agency.organ_id for u in settings.units] == ["000.00.00.H01", "000.00.01.H01"]
    second = settings.units[1]
    assert second.exchange.root == Path("/var/lib/edxml-connector/exchange/000.00.01.H01")
    assert second.exchange.group == "edxml-snv"
    assert second.database is None
