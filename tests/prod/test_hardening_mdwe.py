"""MemoryDenyWriteExecute=yes in the unit: does the whole stack run without W+X memory?

The kernel's own switch (prctl PR_SET_MDWE, Linux >= 6.3) refuses the same mappings that
systemd's seccomp filter refuses, so a subprocess that turns it on and then imports every
dependency, signs an XML document and opens SQLite shows that the service will not crash on
its first import. Skipped on older kernels.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import ctypes, mmap, sys
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit(77)
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError:
        pass
    else:
        sys.exit("W+X mapping was allowed: MDWE is not in force")
    import datetime, sqlite3
    import apscheduler.schedulers.background, prometheus_client, pydantic, requests, rich
    import sqlalchemy, structlog, watchdog.observers, yaml, psycopg, pymysql
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from lxml import etree
    from signxml import XMLSigner, XMLVerifier
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mdwe")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    signed = XMLSigner().sign(etree.fromstring(b"<doc><p>xin chao</p></doc>"), key=key, cert=[cert])
    XMLVerifier().verify(signed, x509_cert=cert)
    db = sqlite3.connect(":memory:"); db.execute("pragma journal_mode=wal")
    print("ok")
""")


def test_the_stack_runs_with_memory_deny_write_execute():
    import pytest
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            timeout=120)
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux >= 6.3 needed)")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok"
