"""The low-memory verification path gives exactly signxml's verdict, without the attachments in memory.

Each case calls both paths explicitly — ``verify_low_memory`` (with a small lift threshold so that
test-sized attachments are lifted, and asserting it did not fall back) and
``verify_package_signxml`` — and compares the whole results; xmlsec1 is the independent referee
for our valid (and tampered) packages.
"""

from __future__ import annotations

import base64
import random
import re
import subprocess
import tracemalloc
from pathlib import Path

import pytest
from lxml import etree

from connector.devtools.devcerts import make_dev_certs
from connector.edxml.digest_stream import ByteSource, ascii_compatible, find_base64_runs
from connector.edxml.signing import (
    DS,
    SignatureState,
    sign_package,
    verify_low_memory,
    verify_package,
    verify_package_file,
    verify_package_signxml,
)
from connector.edxml.writer import write_package, write_package_to
from connector.edxml.xmlparse import ParseLimits
from connector.errors import EdxmlError, PackageTooLarge

THRESHOLD = 1024
DIGEST_MISMATCH = "digest mismatch: the signed content was changed after signing"


def _random_bytes(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def both_paths(data: bytes, tmp_path: Path, **options):
    """(low-memory from bytes, low-memory from a file, signxml); the low-memory ones must not fall back."""
    path = tmp_path / "package.edxml"
    path.write_bytes(data)
    from_bytes = verify_low_memory(data, threshold=THRESHOLD, **options)
    from_file = verify_low_memory(path, threshold=THRESHOLD, **options)
    assert from_bytes is not None and from_file is not None, "the low-memory path fell back to signxml"
    return from_bytes, from_file, verify_package_signxml(data, **options)


def xmlsec_accepts(xmlsec1: str, ca: Path, data: bytes, tmp_path: Path) -> bool:
    path = tmp_path / "for-xmlsec.edxml"
    path.write_bytes(data)
    return subprocess.run([xmlsec1, "--verify", "--trusted-pem", str(ca), str(path)],
                          capture_output=True, timeout=60).returncode == 0


def _encoded_text(data: bytes) -> bytes:
    match = re.search(rb"ContentTransferEncoded[^>]*>([^<]+)<", data)
    assert match, "no ContentTransferEncoded text in the package"
    return match.group(1)


# -- the packages ---------------------------------------------------------------------------------
def _signed(make_package, key, tmp_path, algorithm="rsa-sha256") -> bytes:
    return sign_package(write_package(make_package([_random_bytes(20_000), _random_bytes(3_000, 2)])), key,
                        algorithm=algorithm)


def _streamed(make_package, key, tmp_path) -> bytes:
    path = tmp_path / "streamed.edxml"
    write_package_to(make_package([_random_bytes(30_000)]), path, signer=key, fsync=False)
    return path.read_bytes()


def _tamper_subject(data: bytes) -> bytes:
    return data.replace("liên thông".encode(), "liên thôngx".encode(), 1)


def _tamper_attachment(data: bytes) -> bytes:
    text = _encoded_text(data)
    position = data.index(text) + len(text) // 2
    replacement = b"B" if data[position:position + 1] != b"B" else b"C"
    return data[:position] + replacement + data[position + 1:]


def _tamper_signature_value(data: bytes) -> bytes:
    start = data.index(b"SignatureValue>") + len(b"SignatureValue>") + 10
    replacement = b"A" if data[start:start + 1] != b"A" else b"B"
    return data[:start] + replacement + data[start + 1:]


def _character_reference_in_base64(data: bytes) -> bytes:
    """Spell one base64 character as a character reference: the parsed text is unchanged."""
    text = _encoded_text(data)
    position = data.index(text) + len(text) // 3
    character = data[position:position + 1]
    return data[:position] + b"&#%d;" % character[0] + data[position + 1:]


def _crlf_wrapped(make_package, key, tmp_path) -> bytes:
    """Signed with base64 in 76-column lines, then the line ends written as CRLF (as a Windows
    sender would): the parsed text — and so the signature — is the same."""
    unsigned = write_package(make_package([_random_bytes(20_000)]))
    text = _encoded_text(unsigned)
    wrapped = b"\n".join(text[i:i + 76] for i in range(0, len(text), 76))
    signed = sign_package(unsigned.replace(text, wrapped), key)
    return signed.replace(wrapped, wrapped.replace(b"\n", b"\r\n"))


CASES = {
    # name: (build(make_package, key, tmp_path) -> bytes, expected state, expected reason prefix,
    #        xmlsec1 accepts)
    "signed in memory": (_signed, SignatureState.VALID, "signed by", True),
    "streamed-signed": (_streamed, SignatureState.VALID, "signed by", True),
    "rsa-sha1": (lambda m, k, t: _signed(m, k, t, "rsa-sha1"), SignatureState.VALID, "signed by", True),
    "CRLF-wrapped base64": (_crlf_wrapped, SignatureState.VALID, "signed by", True),
    "character reference in base64": (lambda m, k, t: _character_reference_in_base64(_signed(m, k, t)),
                                      SignatureState.VALID, "signed by", True),
    "tampered header field": (lambda m, k, t: _tamper_subject(_signed(m, k, t)),
                              SignatureState.INVALID, DIGEST_MISMATCH, False),
    "tampered attachment byte": (lambda m, k, t: _tamper_attachment(_signed(m, k, t)),
                                 SignatureState.INVALID, DIGEST_MISMATCH, False),
    "tampered streamed attachment": (lambda m, k, t: _tamper_attachment(_streamed(m, k, t)),
                                     SignatureState.INVALID, DIGEST_MISMATCH, False),
    "tampered SignatureValue": (lambda m, k, t: _tamper_signature_value(_signed(m, k, t)),
                                SignatureState.INVALID, "signature mismatch", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_low_memory_and_signxml_agree_on_our_packages(case, make_package, agency_key, dev_certs,
                                                       tmp_path, xmlsec1):
    build, state, reason, xmlsec_ok = CASES[case]
    data = build(make_package, agency_key, tmp_path)
    from_bytes, from_file, reference = both_paths(data, tmp_path, trust=dev_certs.ca_cert)
    assert from_bytes == reference
    assert from_file == reference
    assert reference.state is state and reference.reason.startswith(reason), reference.reason
    assert xmlsec_accepts(xmlsec1, dev_certs.ca_cert, data, tmp_path) is xmlsec_ok


def test_trust_outcomes_agree(make_package, agency_key, dev_certs, tmp_path, tmp_path_factory):
    data = _signed(make_package, agency_key, tmp_path)
    other = make_dev_certs(tmp_path_factory.mktemp("other-ca"))
    for trust in (None, other.ca_cert, dev_certs.directory):
        from_bytes, from_file, reference = both_paths(data, tmp_path, trust=trust)
        assert from_bytes == from_file == reference
    assert verify_low_memory(data, threshold=THRESHOLD).state is SignatureState.UNTRUSTED
    assert verify_low_memory(data, trust=other.ca_cert, threshold=THRESHOLD).reason.endswith("(unknown CA)")


SDK_SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "interop" / "sdk-samples"


@pytest.mark.parametrize("name", sorted(p.name for p in SDK_SAMPLES.glob("*.edxml")))
def test_sdk_samples_agree_and_are_unverifiable_or_absent(name, interop_dir, tmp_path):
    data = (interop_dir / "sdk-samples" / name).read_bytes()
    from_bytes, from_file, reference = both_paths(data, tmp_path)
    assert from_bytes == from_file == reference
    assert reference.state in {SignatureState.UNVERIFIABLE, SignatureState.ABSENT}
    if name.startswith("edoc_"):
        assert reference.state is SignatureState.UNVERIFIABLE


def test_handwritten_xlink_sample_agrees_invalid_digest_mismatch(interop_dir, tmp_path):
    data = (interop_dir / "handwritten" / "edoc_undeclared_xlink.edxml").read_bytes()
    from_bytes, from_file, reference = both_paths(data, tmp_path)
    assert from_bytes == from_file == reference
    assert reference.state is SignatureState.INVALID and reference.reason == DIGEST_MISMATCH
    assert reference.warnings  # the reader's repair is reported by both


def test_broken_sample_gives_the_same_error(interop_dir):
    path = interop_dir / "handwritten" / "edoc_nested_from.edxml"
    with pytest.raises(EdxmlError) as low:
        verify_low_memory(path, threshold=THRESHOLD)
    with pytest.raises(EdxmlError) as reference:
        verify_package_signxml(path.read_bytes(), file=str(path))
    assert low.value.one_line() == reference.value.one_line()


# -- shapes the low-memory path leaves to signxml ---------------------------------------------------
def _add_key_value(data: bytes) -> bytes:
    return data.replace(b"<ds:X509Data>", b"<ds:KeyValue><ds:RSAKeyValue><ds:Modulus>AQAB</ds:Modulus>"
                                          b"<ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue></ds:KeyValue>"
                                          b"<ds:X509Data>", 1)


def _comment_with_long_base64(data: bytes) -> bytes:
    """A comment holding a long base64 run between '>' and '<': C14N drops comments, so the
    placeholder would vanish — the path must notice and leave the verdict to signxml."""
    run = base64.b64encode(_random_bytes(3_000, 5))
    return data.replace(b"</edXML:edXMLHeader>", b"<!-- x>" + run + b"<y --></edXML:edXMLHeader>", 1)


@pytest.mark.parametrize("change", [_add_key_value, _comment_with_long_base64])
def test_other_shapes_fall_back_to_signxml(change, make_package, agency_key, dev_certs, tmp_path):
    original = _signed(make_package, agency_key, tmp_path)
    data = change(original)
    assert data != original
    assert verify_low_memory(data, trust=dev_certs.ca_cert, threshold=THRESHOLD) is None
    assert (verify_package(data, trust=dev_certs.ca_cert)
            == verify_package_signxml(data, trust=dev_certs.ca_cert))


def test_schema_invalid_signature_is_malformed_in_both(make_package, agency_key, dev_certs, tmp_path):
    data = _signed(make_package, agency_key, tmp_path).replace(b"<ds:SignatureValue>",
                                                               b"<ds:Bogus/><ds:SignatureValue>", 1)
    from_bytes, from_file, reference = both_paths(data, tmp_path, trust=dev_certs.ca_cert)
    assert from_bytes == from_file == reference
    assert reference.state is SignatureState.INVALID and reference.reason.startswith("malformed signature")


# -- the raw-bytes scanner --------------------------------------------------------------------------
_ALLOWED = rb"A-Za-z0-9+/= \t\n\r"


def _random_document(rng: random.Random) -> bytes:
    pieces = [b"<?xml version=\"1.0\"?>\n<root>"]
    for _ in range(rng.randint(1, 40)):
        kind = rng.random()
        if kind < 0.4:
            alphabet = b"ABCxyz0189+/= \n\r"
            pieces.append(bytes(rng.choice(alphabet) for _ in range(rng.choice((0, 5, 500, 1500, 5000)))))
        elif kind < 0.6:
            pieces.append(rng.choice([b"<a>", b"</a>", b"<b x=\"1>2\">", b"</b>", b"<c/>"]))
        elif kind < 0.8:
            pieces.append(rng.choice([b"&amp;", b"&#65;", b"\xc3\xa1", b"<!-- >AAA< -->",
                                      b"<![CDATA[A>B]]>"]))
        else:
            pieces.append(b">" + b"Q" * rng.choice((10, 1023, 1024, 3000)) + rng.choice([b"<", b"&", b">"]))
    return b"".join(pieces) + b"</root>"


@pytest.mark.parametrize("seed", range(40))
def test_find_base64_runs_matches_a_regex_oracle(seed):
    rng = random.Random(seed)
    document = _random_document(rng)
    threshold = rng.choice((300, 1024, 4096))
    runs = re.finditer(rb"(?<=>)[" + _ALLOWED + rb"]+(?=<)", document)
    expected = [(m.start(), m.end() - m.start()) for m in runs if m.end() - m.start() >= threshold]
    assert find_base64_runs(ByteSource(document), threshold) == expected


@pytest.mark.parametrize("head, expected", [
    (b'<?xml version="1.0" encoding="UTF-8"?><a/>', True),
    (b"<a/>", True),
    (b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?><a/>', True),
    (b"<?xml version='1.0' encoding='ISO-8859-1'?><a/>", False),
    ('<?xml version="1.0" encoding="UTF-16"?><a/>'.encode("utf-16"), False),
])
def test_raw_lifting_only_for_utf8_or_ascii(head, expected):
    assert ascii_compatible(ByteSource(head)) is expected


# -- the automatic choice, files, limits ---------------------------------------------------------------
def test_large_package_is_verified_without_its_attachment_in_memory(make_package, agency_key,
                                                                     dev_certs, tmp_path):
    """Above the default threshold verify_package and verify_package_file take the low-memory path:
    Python-side allocations stay far below the attachment's base64 size, while the signxml path
    copies the document (tracemalloc counts Python objects only, enough to tell the two apart)."""
    path = tmp_path / "large.edxml"
    write_package_to(make_package([_random_bytes(9 << 20)]), path, signer=agency_key, fsync=False)
    encoded = 12 << 20  # base64 of 9 MB
    tracemalloc.start()
    try:
        by_file = verify_package_file(path, trust=dev_certs.ca_cert)
        _, file_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        reference = verify_package_signxml(path.read_bytes(), trust=dev_certs.ca_cert)
        _, signxml_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert by_file == reference and reference.state is SignatureState.VALID
    assert verify_package(path.read_bytes(), trust=dev_certs.ca_cert) == reference
    assert file_peak < encoded / 4 < encoded < signxml_peak


def test_verify_package_file_checks_the_size_limit_first_and_names_the_file(tmp_path):
    path = tmp_path / "big.edxml"
    path.write_bytes(b"<a>" + b"A" * 5000 + b"</a>")
    with pytest.raises(PackageTooLarge) as error:
        verify_package_file(path, limits=ParseLimits(max_package_size=1000))
    assert str(path) in error.value.one_line()
    with pytest.raises(EdxmlError) as missing:
        verify_package_file(tmp_path / "missing.edxml")
    assert "missing.edxml" in missing.value.one_line()


def test_a_long_certificate_text_is_read_in_place(make_package, agency_key, dev_certs, tmp_path):
    """With a tiny threshold the X509Certificate text is a run too; verification must read it
    as it is (it is put back into the tree), not as a placeholder."""
    data = _signed(make_package, agency_key, tmp_path)
    certificate = etree.fromstring(data).find(f".//{DS}X509Certificate").text
    assert len(certificate) > 300
    low = verify_low_memory(data, trust=dev_certs.ca_cert, threshold=300)
    assert low is not None and low == verify_package_signxml(data, trust=dev_certs.ca_cert)
    assert low.state is SignatureState.VALID
