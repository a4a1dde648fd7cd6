"""Constants shared by the axis tests (a uniquely named module, importable from any test file)."""

from __future__ import annotations

from connector.axis.client import RetryPolicy

G22 = "000.00.00.G22"   # Văn phòng Chính phủ, systemid equal to its OrganId (the usual case)
H41 = "000.00.00.H41"   # UBND Nghệ An, with a systemid different from its OrganId
H14 = "000.00.00.H14"
SECRETS = {G22: "demo-secret-123", "sys-h41": "bí-mật-h41", H14: "secret-h14"}

AGENCIES = {"agencies": [
    {"organ_id": G22, "name": "Văn phòng Chính phủ", "systemid": G22, "secret": SECRETS[G22],
     "mail": "vpcp@gov.vn"},
    {"organ_id": H41, "name": "UBND Tỉnh Nghệ An", "systemid": "sys-h41",
     "secret": SECRETS["sys-h41"]},
    {"organ_id": H14, "name": "UBND Tỉnh Hòa Bình", "systemid": H14, "secret": SECRETS[H14]},
]}

FAST_RETRY = RetryPolicy(max_attempts=4, max_total_seconds=10.0, initial_backoff=0.01,
                         max_backoff=0.05)
