"""A package with a 30 MB attachment builds, signs, reads and verifies (libxml2's 10 MB text-node
limit must not get in the way, and our own size limit must still apply)."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import pytest

from connector.edxml.model import Attachment
from connector.edxml.reader import read_package
from connector.edxml.signing import SignatureState, sign_package, verify_package
from connector.edxml.writer import write_package, write_package_to
from connector.edxml.xmlparse import ParseLimits
from connector.errors import PackageTooLarge

SIZE = 30 * 1024 * 1024


@pytest.mark.slow
def test_thirty_megabyte_attachment_round_trip(document, agency_key, dev_certs, tmp_path):
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(os.urandom(SIZE))
    package = dataclasses.replace(document, attachments=[
        Attachment(name="scan.pdf", content_type="application/pdf", content_id="big", path=scan)])

    streamed = tmp_path / "streamed.edxml"
    write_package_to(package, streamed, signer=agency_key)
    data = streamed.read_bytes()
    assert verify_package(data, trust=dev_certs.ca_cert).state is SignatureState.VALID
    read = read_package(data).package
    assert read.attachments[0].sha256() == hashlib.sha256(scan.read_bytes()).hexdigest()

    in_memory = sign_package(write_package(package), agency_key)  # signxml path, huge text node
    assert verify_package(in_memory, trust=dev_certs.ca_cert).state is SignatureState.VALID

    with pytest.raises(PackageTooLarge):
        verify_package(data, limits=ParseLimits(max_package_size=SIZE))
