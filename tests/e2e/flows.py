"""Small steps the e2e tests share: send a document and wait for it, read statuses back.

Each function waits through ``Lab.wait_for`` so that a failure says what was awaited, what was
seen, and shows the daemons' logs.
"""

from __future__ import annotations

from typing import Any

from connector.devtools.lab import AgencyNode, Lab, document_metadata, pdf_bytes

BUSINESS_TYPES = {0: "new", 1: "revoke", 2: "update", 3: "replace"}


def business_kind(meta: dict[str, Any]) -> str | None:
    """new / revoke / update / replace from metadata.json's ``document.business.type`` (the
    BussinessDocType number, which every version of the file carries)."""
    number = ((meta.get("document") or {}).get("business") or {}).get("type")
    return BUSINESS_TYPES.get(int(number)) if number is not None else None


def inbox_by_code(node: AgencyNode, number: str, business_type: str | None = "new") -> list[dict]:
    """``node``'s inbox entries whose code number is ``number`` (and business type)."""
    return [d for d in node.inbox_documents()
            if (d.get("code") or "").split("/")[0] == number
            and (business_type is None or business_kind(d) == business_type)]


def failed_at_sender(lab: Lab, receiver: AgencyNode):
    """A ``fail_if`` for waits at ``receiver``: an error file that appears in the other agency's
    failed/ while we wait (the item will never arrive, so waiting longer is pointless)."""
    sender = lab.a if receiver is lab.b else lab.b
    before = set(sender.error_files())
    return lambda: {name: text.splitlines()[2:3] for name, text in sender.error_files().items()
                    if name not in before}


def wait_inbox(lab: Lab, node: AgencyNode, number: str, business_type: str | None = "new",
               timeout: float = 30.0) -> dict[str, Any]:
    """The one inbox entry for code ``number`` once it is there."""
    found = lab.wait_for(lambda: inbox_by_code(node, number, business_type), timeout=timeout,
                         fail_if=failed_at_sender(lab, node),
                         what=f"document {number} ({business_type}) in {node.label}'s inbox",
                         seen=lambda: sorted((d.get("code"), business_kind(d))
                                             for d in node.inbox_documents()),
                         require_running=lab.processes)
    return found[0]


def send_document(lab: Lab, sender: AgencyNode, receiver: AgencyNode, number: str, *,
                  subject: str | None = None, files: dict[str, bytes] | None = None,
                  name: str | None = None, **extra: Any) -> str:
    """Drop a bundle addressed to ``receiver`` in ``sender``'s outbox; return the bundle name."""
    name = name or f"doc-{number}"
    metadata = document_metadata([receiver.organ_id], number,
                                 subject or f"Văn bản thử nghiệm số {number}", **extra)
    sender.drop_bundle(name, metadata, files if files is not None
                       else {f"van-ban-{number}.pdf": pdf_bytes(f"số {number}")})
    return name


def deliver(lab: Lab, sender: AgencyNode, receiver: AgencyNode, number: str,
            **kwargs: Any) -> dict[str, Any]:
    """Send a new document and return its metadata.json at the receiver."""
    send_document(lab, sender, receiver, number, **kwargs)
    return wait_inbox(lab, receiver, number)


def outgoing_rows(node: AgencyNode) -> list[dict[str, Any]]:
    return node.status_json("--direction", "out")["items"]


def recipient_status(node: AgencyNode, document_id: str, organ_id: str) -> str | None:
    """The latest status ``organ_id`` sent about ``document_id``, as ``status --json`` shows it
    on the sender (the newest outgoing document — bundle or ready package — with that id)."""
    for row in outgoing_rows(node):
        if row["document_id"] == document_id and row["kind"] != "status":
            for recipient in row["recipients"]:
                if recipient["organ_id"] == organ_id:
                    return recipient["status"]
    return None


def wait_status(lab: Lab, node: AgencyNode, document_id: str, organ_id: str, code: str,
                timeout: float = 30.0) -> None:
    lab.wait_for(lambda: recipient_status(node, document_id, organ_id) == code, timeout=timeout,
                 what=f"status {code} from {organ_id} on {document_id} in {node.label}'s `status`",
                 seen=lambda: recipient_status(node, document_id, organ_id),
                 require_running=lab.processes)


def receipt_for(node: AgencyNode, name: str) -> dict[str, Any] | None:
    return node.receipts().get(name)


def events_about(node: AgencyNode, document_id: str, event: str) -> list[dict[str, Any]]:
    return [e for e in node.received_events()
            if e.get("event") == event and e.get("document_id") == document_id]
