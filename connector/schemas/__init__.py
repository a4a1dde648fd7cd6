"""Pydantic models of the files exchanged with the agency's DMS (document, status, receipt,
metadata), each printable as JSON Schema by ``edxml-connector schema NAME``."""
