"""Reading a document's attachments: the manifest, the ``AttachmentEncoded`` parts, and the
base64 inside them.

Writers disagree on where a part's facts live (the SDK repeats name, type and description in
the manifest ``Reference`` and in the ``Attachment``; hand-made files fill one or the other, put
``cid:`` on one side only, or leave ``ContentId`` out). The rule: the attachment's own value wins,
the manifest fills gaps, a conflict is a warning, a manifest entry without its part is fatal.

Base64 texts can be hundreds of megabytes, so decoding avoids copies: the text is taken out of
the tree first and decoded straight from the string when it is one line (the SDK's and our
output). A bad character is reported with the line *inside* the text where it is.
"""

from __future__ import annotations

import binascii
import re

from connector.edxml.element_reader import ElementReader
from connector.edxml.encoded_content import Base64Problem, EncodedContent, Segment
from connector.edxml.identifiers import normalize_content_id
from connector.edxml.lifted_package import LiftedTexts
from connector.edxml.model import Attachment
from connector.errors import EdxmlError

_BASE64_WHITESPACE = (" ", "\n", "\r", "\t")
_ATTACHMENT_CHILDREN = {"ContentId", "AttachmentName", "Description", "ContentType",
                        "ContentTransferEncoded"}
_REFERENCE_CHILDREN = {"ContentId", "ContentType", "Description", "AttachmentName"}


class AttachmentReader(ElementReader):
    """Attachments of one document package (shares the package reader's warning list).

    With ``lifted`` (a package read from its file), a text the parse left in the file becomes
    the attachment's :class:`EncodedContent`, checked and measured here in pieces."""

    def __init__(self, file: str | None, warnings: list[str], accepted: set[str | None],
                 lifted: LiftedTexts | None = None) -> None:
        super().__init__(file, warnings, accepted)
        self.lifted = lifted

    def read(self, body, body_path: str, encoded_blocks) -> list[Attachment]:
        """The attachments, in the order of their parts; a manifest entry without its part raises."""
        references = []
        if body is not None:
            bg = self.children(body, body_path, {"edXMLManifest"})
            manifest = self.one(bg, "edXMLManifest", body_path)
            if manifest is not None:
                mpath = f"{body_path}/edXMLManifest"
                for element in self.children(manifest, mpath, {"Reference"}).get("Reference", []):
                    rpath = f"{mpath}/Reference"
                    rg = self.children(element, rpath, _REFERENCE_CHILDREN)
                    references.append({
                        "element": element,
                        "content_id": normalize_content_id(self.field_text(rg, "ContentId", rpath)),
                        "content_type": self.field_text(rg, "ContentType", rpath),
                        "description": self.field_text(rg, "Description", rpath),
                        "name": self.field_text(rg, "AttachmentName", rpath),
                    })

        parts = []
        for block in encoded_blocks:
            block_path = "edXML/AttachmentEncoded"
            for element in self.children(block, block_path, {"Attachment"}).get("Attachment", []):
                parts.append((element, f"{block_path}/Attachment"))

        attachments: list[Attachment] = []
        matched: set[int] = set()
        for position, (element, path) in enumerate(parts, start=1):
            ag = self.children(element, path, _ATTACHMENT_CHILDREN)
            content_id = normalize_content_id(self.field_text(ag, "ContentId", path))
            name = self.field_text(ag, "AttachmentName", path)
            reference = self.match_reference(references, matched, content_id, name)
            encoded = self.one(ag, "ContentTransferEncoded", path)
            if encoded is None:
                raise self.error(f"attachment {content_id or name or position} has no "
                                 "ContentTransferEncoded", element=f"{path}/ContentTransferEncoded",
                                 line=element.sourceline,
                                 hint="the attachment's content is missing; ask the sender again")
            data = self.decode(encoded, f"{path}/ContentTransferEncoded")
            content_type = self.field_text(ag, "ContentType", path)
            description = self.field_text(ag, "Description", path)
            if reference is not None:
                name = self.reconcile(name, reference["name"], "AttachmentName", content_id)
                content_type = self.reconcile(content_type, reference["content_type"],
                                              "ContentType", content_id)
                description = self.reconcile(description, reference["description"],
                                             "Description", content_id, warn=False)
            else:
                self.warn(f"attachment {content_id or name or position} (line {element.sourceline}) "
                          "is not listed in the manifest; kept")
            if not name:
                name = f"attachment-{position}"
                self.warn(f"attachment {content_id or position} has no AttachmentName; "
                          f"named {name!r}")
            if not content_type:
                content_type = "application/octet-stream"
                self.warn(f"attachment {name!r} has no ContentType; read as {content_type}")
            attachment = Attachment(name=name, content_type=content_type, content_id=content_id,
                                    description=description)
            if isinstance(data, EncodedContent):
                attachment.encoded = data
            else:
                attachment.data = data
            if not attachment.size:
                self.warn(f"attachment {name!r} is empty")
            attachments.append(attachment)

        for index, reference in enumerate(references):
            if index in matched:
                continue
            label = reference["content_id"] or reference["name"] or f"#{index + 1}"
            raise self.error(f"the manifest references attachment {label}, which the package does "
                             "not contain", element=f"{body_path}/edXMLManifest/Reference",
                             line=reference["element"].sourceline,
                             hint="ask the sender to send the package again with all attachments")
        return attachments

    def match_reference(self, references, matched: set[int], content_id, name):
        """The manifest entry for an attachment: same ContentId, else (when ids are missing)
        the same AttachmentName."""
        for by in ("content_id", "name"):
            key = content_id if by == "content_id" else name
            if not key:
                continue
            for index, reference in enumerate(references):
                if index in matched or reference[by] != key:
                    continue
                if by == "name" and reference["content_id"] and content_id:
                    continue
                if by == "name":
                    self.warn(f"attachment {name!r} matched to its manifest entry by name "
                              "(ContentId missing)")
                matched.add(index)
                return reference
        return None

    def reconcile(self, own: str | None, manifest: str | None, label: str, content_id,
                  *, warn: bool = True) -> str | None:
        """The attachment's own value wins; the manifest fills a gap; a conflict is reported."""
        if not own:
            return manifest if manifest else own
        if manifest and manifest != own and warn:
            self.warn(f"attachment {content_id}: {label} is {own!r} but the manifest says "
                      f"{manifest!r}; {own!r} is used")
        return own

    def decode(self, element, path: str) -> bytes | EncodedContent:
        """Base64 text to bytes in linear time and without needless copies: the text is taken
        out of the tree first, decoded straight from the string when it has no line breaks (the
        SDK and our writer emit one line), else after one C-level whitespace strip. A text left
        in the file is checked there instead and stays there."""
        texts = [element.text or ""]
        for child in element:  # comments inside the base64 (seen in hand-edited files)
            if isinstance(child.tag, str):
                raise self.error("ContentTransferEncoded holds an element instead of base64 text",
                                 element=path, line=child.sourceline,
                                 hint="ask the sender to send the package again")
            texts.append(child.tail or "")
        line = element.sourceline
        segments = self.lifted.segments(texts) if self.lifted is not None else None
        if segments is not None and self.lifted is not None:
            return self.decode_in_file(segments, line, path)
        text = "".join(texts)
        del texts
        element.text = None
        if not text.isascii():
            first = re.search(r"[^\x00-\x7f]", text)
            raise self.bad_base64(text, line, path, first.start() if first else 0)
        if any(ch in text for ch in _BASE64_WHITESPACE):
            encoded: str | bytes = text.encode("ascii").translate(None, b" \t\r\n")
        else:
            encoded = text
        try:
            return binascii.a2b_base64(encoded, strict_mode=True)
        except binascii.Error:
            raw = encoded.encode("ascii") if isinstance(encoded, str) else encoded
            return self.decode_leniently(raw, text, line, path)

    def decode_in_file(self, segments: list[Segment], line: int | None, path: str
                       ) -> EncodedContent:
        """Check a text left in the package file, in pieces; the same errors and warning as
        :meth:`decode` for the same text."""
        assert self.lifted is not None
        try:
            content = EncodedContent.scanned(self.lifted.path, segments)
        except Base64Problem as problem:
            if problem.segment is None:
                raise self.error("invalid base64: the length or padding is wrong", element=path,
                                 line=line, hint="the attachment is damaged; ask the sender to "
                                                 "send it again") from None
            before = segments[:problem.segment]
            text = "".join(s for s in before if isinstance(s, str))
            literal = segments[problem.segment]
            assert isinstance(literal, str)
            offset = (line or 0) + text.count("\n")
            raise self.bad_base64(literal, offset, path, problem.position or 0) from None
        except OSError as error:
            raise self.error(f"cannot read the attachment's text from the package file: "
                             f"{error.strerror or error}", element=path, line=line,
                             hint="check that the package file is still there") from error
        if content.padding_recovered:
            self.warn(f"{path} (line {line}): base64 padding was wrong; recovered")
        return content

    def decode_leniently(self, raw: bytes, text: str, line: int | None, path: str) -> bytes:
        bad = re.search(rb"[^A-Za-z0-9+/=]", raw)
        if bad is None:
            stripped = raw.rstrip(b"=")
            if b"=" not in stripped and len(stripped) % 4 != 1:
                padded = stripped + b"=" * (-len(stripped) % 4)
                try:
                    data = binascii.a2b_base64(padded, strict_mode=True)
                except binascii.Error:
                    pass
                else:
                    self.warn(f"{path} (line {line}): base64 padding was wrong; "
                              "recovered")
                    return data
            raise self.error("invalid base64: the length or padding is wrong", element=path,
                             line=line,
                             hint="the attachment is damaged; ask the sender to send it again")
        index = re.search(r"[^A-Za-z0-9+/=\s]", text)
        raise self.bad_base64(text, line, path, index.start() if index else 0)

    def bad_base64(self, text: str, first_line: int | None, path: str, index: int) -> EdxmlError:
        line = (first_line or 0) + text.count("\n", 0, index)
        shown = text[index:index + 12]
        return self.error(f"invalid base64: unexpected {shown!r}", element=path, line=line or None,
                          hint="the attachment is damaged; ask the sender to send it again")

    # ---- status packages ----------------------------------------------------------------
