"""The XMLDSig vocabulary that signing and both verification paths share.

Why a module of its own: the signer, the signxml verification path and the low-memory path must
agree byte for byte — on namespaces, transform URIs, the digest a URI names, how an enveloped
signature is cut out of the document, and the words a clerk reads when a check fails (the two
verification paths are tested to give the *same* reason). One definition each keeps them agreeing.
"""

from __future__ import annotations

import enum
import hashlib

from lxml import etree

XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"
DS = "{" + XMLDSIG + "}"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
C14N_METHODS = frozenset({
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    EXC_C14N,
    EXC_C14N + "WithComments",
    "http://www.w3.org/2006/12/xml-c14n11",
    "http://www.w3.org/2006/12/xml-c14n11#WithComments",
})
"""The canonicalisations a package's signature may apply after the enveloped transform."""

HASH_BY_URI = {
    "http://www.w3.org/2000/09/xmldsig#sha1": hashlib.sha1,
    "http://www.w3.org/2001/04/xmlenc#sha256": hashlib.sha256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashlib.sha384,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashlib.sha512,
}

#: The reason both verification paths give when the reference digest does not match.
DIGEST_MISMATCH = "digest mismatch: the signed content was changed after signing"


def signature_mismatch(error: Exception) -> str:
    return f"signature mismatch: SignatureValue does not verify with the certificate's key ({error})"


def remove_keeping_tail(element: etree._Element) -> None:
    """Remove ``element`` as the enveloped-signature transform does: the element goes, the text
    after it stays (lxml would drop it with the element)."""
    parent, previous, tail = element.getparent(), element.getprevious(), element.tail
    parent.remove(element)
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail


class SignatureState(str, enum.Enum):
    """Outcome of verifying a received package's signature: the verifier's verdict, the
    journal's ``signature_state`` column and the inbox signature policy's keys."""

    VALID = "valid"
    INVALID = "invalid"
    ABSENT = "absent"
    UNVERIFIABLE = "unverifiable"
    UNTRUSTED = "untrusted"
    EXPIRED = "expired"
    REVOKED = "revoked"
    WRONG_SIGNER = "wrong-signer"
    REVOCATION_UNKNOWN = "revocation-unknown"
    UNBOUND = "unbound"


def signer_fingerprint(path) -> str | None:
    """SHA-256 (hex) of the first certificate in the package's ``ds:KeyInfo`` — the signer's,
    as we and the SDK write it — or None when the package carries none. Reads the file
    incrementally with nothing resolved (the package was checked when it was stored)."""
    import base64
    import binascii

    try:
        for _event, element in etree.iterparse(str(path), events=("end",), tag=f"{DS}X509Certificate",
                                               resolve_entities=False, no_network=True,
                                               load_dtd=False, huge_tree=True):
            try:
                der = base64.b64decode("".join((element.text or "").split()), validate=True)
            except (binascii.Error, ValueError):
                return None
            return hashlib.sha256(der).hexdigest()
    except (OSError, etree.XMLSyntaxError):
        return None
    return None
