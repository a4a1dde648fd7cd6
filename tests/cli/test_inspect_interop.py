"""``inspect --json`` on every sample under ../shared/interop, against values read by hand.

The expected values were taken once from the files themselves (element text, and for attachments
``base64 -d | sha256sum`` of the ContentTransferEncoded text, and of the zip entry inside) and are
hard-coded here, so that a regression anywhere between the reader and the JSON shows up as a
wrong value, not just as a crash.
"""

from __future__ import annotations

import re

import pytest

DOCUMENT_ID = "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
SUBJECT = "V/v kết nối, liên thông phần mềm quản lý văn bản"
SDK_ATTACHMENT = "1896_QD-TTg_m_294779.doc"
# The zip part of every SDK document holds one .edxml file (the same bytes in each).
INNER_SIZE = 388347
INNER_SHA256 = "8385739ec4a4ed36d71eabcaead629641ffc5ffff3d487ff5c34d2f821c9f36e"
THREE_RECEIVERS = ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"]

DOCUMENTS = {
    "sdk-samples/edoc_new.edxml": dict(
        document_id=DOCUMENT_ID, from_="000.00.00.K19", to=["000.00.50.H19"],
        code=("781622e22", "VPCP-TTĐT"), subject=SUBJECT, date="2018-10-19", business=0,
        part_sha256="7ab7c43a02a3cf2cedd14ebf2545a37e7a1307e0091b4ba94c2ef1e842a763aa",
        inner="32da2890-1a55-4ccd-9ac9-cd0d98559e67.edxml", signature="unverifiable"),
    "sdk-samples/edoc_revocation.edxml": dict(
        document_id=DOCUMENT_ID, from_="000.00.00.G22", to=THREE_RECEIVERS,
        code=("7816", "VPCP-TTĐT"), subject=SUBJECT, date="2018-09-28", business=1,
        part_sha256="22100d39101238b750bc39a24ff6994cb2c0cf08f4edbf5f3c34d4700857d378",
        inner="a3661564-bcbb-4406-a6a9-ceddbc8f4e17.edxml", signature="unverifiable"),
    "sdk-samples/edoc_update.edxml": dict(
        document_id=DOCUMENT_ID, from_="000.00.00.G22", to=THREE_RECEIVERS,
        code=("7816", "VPCP-TTĐT"), subject=SUBJECT, date="2018-09-28", business=2,
        part_sha256="51653b9613f7f0275b43f80704033299740c702f354f44a06f55770cfbb0b135",
        inner="3ed3cc90-1dcb-4382-9725-1de9cd899790.edxml", signature="unverifiable"),
    "sdk-samples/edoc_replacement.edxml": dict(
        document_id=DOCUMENT_ID, from_="000.00.00.G22", to=THREE_RECEIVERS,
        code=("7816", "VPCP-TTĐT"), subject=SUBJECT, date="2018-09-28", business=3,
        part_sha256="57634d6539d79c5935c12fabd7d8fa513d81d84a5fad4c82258a31ffa741aba5",
        inner="30d190ec-60e3-41b6-bda7-50b17d98b35d.edxml", signature="unverifiable"),
    "handwritten/edoc_new_variant.edxml": dict(
        document_id=DOCUMENT_ID, from_="000.00.00.A80", to=["28.22.H17"],
        code=("74fass22", "VPCP-TTĐT"), subject=SUBJECT, date="2019-01-16", business=0,
        part_sha256="7ab7c43a02a3cf2cedd14ebf2545a37e7a1307e0091b4ba94c2ef1e842a763aa",
        inner="32da2890-1a55-4ccd-9ac9-cd0d98559e67.edxml", signature="unverifiable"),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_sdk_shaped_documents(cli, interop_dir, name):
    expected = DOCUMENTS[name]
    run = cli("inspect", interop_dir / name, "--json")
    assert run.code == 0, run.err
    summary = run.json()
    assert summary["kind"] == "edoc"
    assert summary["document_id"] == expected["document_id"]
    assert summary["from"]["organ_id"] == expected["from_"]
    assert [item["organ_id"] for item in summary["to"]] == expected["to"]
    assert (summary["code"]["number"], summary["code"]["notation"]) == expected["code"]
    assert summary["subject"] == expected["subject"]
    assert summary["promulgation"]["date"] == expected["date"]
    assert summary["promulgation"]["place"] == "Hà Nội"
    assert summary["business"]["type"] == expected["business"]
    assert summary["document_type"]["type_name"] == "Công văn"

    [attachment] = summary["attachments"]
    assert attachment["name"] == SDK_ATTACHMENT
    assert attachment["content_type"] == "application/zip"
    assert attachment["size"] == 270823
    assert attachment["sha256"] == expected["part_sha256"]
    # application/zip under a non-.zip name: the ZIP convention unzips it.
    [entry] = attachment["extracted"]
    assert entry["name"] == expected["inner"]
    assert entry["size"] == INNER_SIZE
    assert entry["sha256"] == INNER_SHA256
    assert "content_type" in entry

    assert summary["signature"]["state"] == expected["signature"]
    assert summary["signature"]["reason"]
    assert isinstance(summary["warnings"], list)


def test_replacement_lists_replaced_documents(cli, interop_dir):
    summary = cli("inspect", interop_dir / "sdk-samples/edoc_replacement.edxml", "--json").json()
    replaces = summary["business"]["replaces"]
    assert [item["document_id"] for item in replaces] == [
        "000.00.00.G22,2014/01/30,7806/VPCP-TTĐT"] * 2
    assert replaces[0]["organ_ids"] == ["000.00.00.H41", "000.00.00.H14"]


def test_revocation_keeps_its_response_for(cli, interop_dir):
    summary = cli("inspect", interop_dir / "sdk-samples/edoc_revocation.edxml", "--json").json()
    [response_for] = summary["response_for"]
    assert response_for == {"organ_id": "000.00.00.H14", "code": "267/VPCP-TTĐT",
                            "promulgation_date": "2018-09-28",
                            "document_id": "000.00.04.G14,2012/08/06,267/VPCP-TTĐT"}


def test_variant_warns_about_the_nonconforming_receiver(cli, interop_dir):
    summary = cli("inspect", interop_dir / "handwritten/edoc_new_variant.edxml", "--json").json()
    assert any("28.22.H17" in warning for warning in summary["warnings"])


def test_undeclared_xlink_sample_is_recovered_with_warnings(cli, interop_dir):
    run = cli("inspect", interop_dir / "handwritten/edoc_undeclared_xlink.edxml", "--json")
    assert run.code == 0, run.err
    summary = run.json()
    assert summary["kind"] == "edoc"
    assert summary["document_id"] == "9fbfbad2-f1f8-4256-a2eb-50fb1061cddb"
    assert summary["from"]["organ_id"] == "14.00.W00"
    assert [item["organ_id"] for item in summary["to"]] == ["14.00.W00"]
    assert summary["code"] == {"number": "34E31", "notation": "PRO-TEST-CASE1"}
    assert summary["subject"] == "Văn bản liên thông chỉ đạo - 190701"
    assert summary["promulgation"]["date"] == "2018-09-27"
    assert summary["business"]["type"] == 0  # no Bussiness element: a new document
    [attachment] = summary["attachments"]
    assert attachment["name"] == "GUIDE_INSTALL OPENVPN.SIGNED.PDF"
    assert attachment["content_type"] == "application/pdf"
    assert attachment["size"] == 284937
    assert attachment["sha256"] == "61d6bc08ae7eae0deb74b6b3f6d27bcc2f059562ba97ce36a653373e087b3df7"
    assert "extracted" not in attachment  # a PDF is not a convention zip
    assert summary["signature"]["state"] == "invalid"
    assert any("xlink" in warning.lower() for warning in summary["warnings"])
    assert any("14.00.W00" in warning for warning in summary["warnings"])


STATUS_FILES = {
    "status.edxml": ("01", "000.00.00.H41", "000.00.00.G22", "2018-09-28", "2018-09-28T17:25:11"),
    "status_inbox_01.edxml": ("01", "000.00.00.H41", "000.00.00.G22", "2015-09-30", None),
    "status_rejection_02.edxml": ("02", "000.00.00.H41", "000.00.00.G22", "2015-09-30", None),
    "status_acceptance_03.edxml": ("03", "000.00.00.H41", "000.00.00.G22", "2015-09-30", None),
    "status_assignment_04.edxml": ("04", "000.00.00.H41", "000.00.00.G22", "2015-09-30", None),
    "status_processing_05.edxml": ("05", "000.00.00.H41", "000.00.00.G22", "2015-09-30", None),
    "status_finish_06.edxml": ("06", "000.00.00.H41", "000.00.00.G22", "2015-09-30", None),
    # The take-back request travels the other way: from the sender G22 to the receiver H41.
    "status_cancellation_13.edxml": ("13", "000.00.00.G22", "000.00.00.H41", "2015-09-30", None),
    "status_change-acceptance_15.edxml": ("15", "000.00.00.H41", "000.00.00.G22", "2015-09-30", None),
    "status_change-rejection_16.edxml": ("16", "000.00.00.H41", "000.00.00.G22", "2015-09-30", None),
}


@pytest.mark.parametrize("name", sorted(STATUS_FILES))
def test_status_samples(cli, interop_dir, name):
    code, sender, addressee, promulgated, timestamp = STATUS_FILES[name]
    run = cli("inspect", interop_dir / "sdk-samples" / name, "--json")
    assert run.code == 0, run.err
    summary = run.json()
    assert summary["kind"] == "status"
    assert summary["status"]["code"] == code
    assert summary["from"]["organ_id"] == sender
    assert summary["to"] == [{"organ_id": addressee}]
    assert summary["document_id"] == DOCUMENT_ID
    response_for = summary["status"]["response_for"]
    assert response_for["document_id"] == DOCUMENT_ID
    assert response_for["organ_id"] == addressee
    assert response_for["code"] == "7816/VPCP-TTĐT"
    assert response_for["promulgation_date"] == promulgated
    assert summary["status"]["timestamp"] == (timestamp or "2015-09-20T11:08:36")
    assert summary["status"]["description"]
    assert summary["signature"]["state"] == "absent"


def test_take_back_sample_description(cli, interop_dir):
    summary = cli("inspect", interop_dir / "sdk-samples/status_cancellation_13.edxml", "--json").json()
    assert summary["status"]["description"] == "Văn thư yêu cầu lấy lại văn bản điện tử kèm lý do"
    assert summary["status"]["staff"]["staff"] == "Nguyen thi ngoc tram"


def test_every_interop_file_is_covered(interop_dir):
    covered = {*DOCUMENTS, *(f"sdk-samples/{name}" for name in STATUS_FILES),
               "handwritten/edoc_undeclared_xlink.edxml", "handwritten/edoc_nested_from.edxml"}
    present = {str(path.relative_to(interop_dir)) for path in interop_dir.rglob("*.edxml")}
    assert present == covered


def test_nested_from_is_refused_with_its_line(cli, interop_dir):
    path = interop_dir / "handwritten/edoc_nested_from.edxml"
    for command in ("inspect", "verify"):
        run = cli(command, path)
        assert run.code == 2
        assert run.out == ""
        [line] = run.err.strip().splitlines()
        match = re.search(r"edoc_nested_from\.edxml:(\d+)", line)
        assert match, line
        assert int(match.group(1)) in (7, 8, 74)  # the unclosed From, or where it is noticed
        assert "Traceback" not in run.err


def test_nested_from_as_a_process(cli_process, interop_dir):
    run = cli_process("inspect", interop_dir / "handwritten/edoc_nested_from.edxml", "--json")
    assert run.code == 2
    assert re.search(r"edoc_nested_from\.edxml:\d+", run.err)
    assert "Traceback" not in run.err
    assert len(run.err.strip().splitlines()) == 1


def test_inspect_as_a_process_prints_utf8_json(cli_process, interop_dir):
    run = cli_process("inspect", interop_dir / "sdk-samples/status_acceptance_03.edxml", "--json")
    assert run.code == 0, run.err
    assert "7816/VPCP-TTĐT" in run.out  # not \u escapes: readable by people and jq alike
    assert run.json()["status"]["code"] == "03"


def test_inspect_text_view(cli, interop_dir):
    run = cli("inspect", interop_dir / "sdk-samples/edoc_replacement.edxml")
    assert run.code == 0, run.err
    assert "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT" in run.out
    assert "7816/VPCP-TTĐT" in run.out
    assert SDK_ATTACHMENT in run.out
    assert "30d190ec-60e3-41b6-bda7-50b17d98b35d.edxml" in run.out
    assert "unverifiable" in run.out
    assert "Văn bản thay thế" in run.out


def test_verify_outcomes_of_samples(cli, interop_dir):
    sdk = cli("verify", interop_dir / "sdk-samples/edoc_new.edxml")
    assert sdk.code == 1 and sdk.out.startswith("unverifiable")
    status = cli("verify", interop_dir / "sdk-samples/status_acceptance_03.edxml")
    assert status.code == 1 and status.out.startswith("absent")
    xlink = cli("verify", interop_dir / "handwritten/edoc_undeclared_xlink.edxml")
    assert xlink.code == 1 and xlink.out.startswith("invalid")
