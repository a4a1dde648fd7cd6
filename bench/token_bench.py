"""Signing through a PKCS#11 token vs a key file (``python -m bench.token_bench``).

Both sign the same package (a 100 KB attachment, as the edXML bench) with an enveloped signature
through the connector's signer (:func:`connector.edxml.signing.sign_package`, the signxml path):
once with agency A's key read from its PKCS#12 file, once with an RSA-2048 key generated inside
a SoftHSM2 token made for the run (``SOFTHSM2_CONF`` in a temporary folder). Reported: signatures
per second for each (median of the repetitions) and their ratio, plus the bare RSA operation
alone (one ``sign`` of 32 bytes) for each, which shows what the token itself costs.

Needs SoftHSM2 (``apt-get install softhsm2``) and python-pkcs11. ``--quick`` for a smoke run.
Results are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def rate(function, seconds: float) -> float:
    """Calls per second of ``function`` over about ``seconds`` (after one warm-up call)."""
    function()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        function()
        count += 1
    return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    args = parser.parse_args(argv)
    seconds, repetitions = (0.5, 3) if args.quick else (3.0, 5)

    with tempfile.TemporaryDirectory(prefix="token-bench-") as scratch:
        root = Path(scratch)
        from connector.devtools.devtoken import init_token, put_agency_key, softhsm_config, softhsm_module

        conf = softhsm_config(root / "softhsm")
        os.environ["SOFTHSM2_CONF"] = str(conf)  # before the module is loaded
        module = softhsm_module()
        if module is None:
            raise SystemExit("SoftHSM2 is not installed (apt-get install softhsm2)")

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        from bench.edxml_bench import _package  # the edXML bench's package, 100 KB attached
        from connector.devtools.devcerts import make_dev_certs
        from connector.edxml.keys import SigningKey, read_password
        from connector.edxml.signing import sign_package
        from connector.edxml.tokens import TokenKeySpec
        from connector.edxml.writer import write_package

        certs = make_dev_certs(root / "certs")
        token = init_token(conf, "bench", "5678", module)
        put_agency_key(token, key_label="signing", key_id=b"\x01", ca_cert=certs.ca_cert,
                       ca_key=certs.ca_key, organ_id=certs.agency_a.organ_id)
        file_key = SigningKey.from_pkcs12(certs.agency_a.p12,
                                          read_password(certs.agency_a.password_file))
        token_key = SigningKey.from_token(TokenKeySpec(module=module, token_label="bench",
                                                       key_label="signing", pin="5678"))
        data = write_package(_package(os.urandom(100 * 1024)))

        figures: dict[str, list[float]] = {"file_package": [], "token_package": [],
                                           "file_rsa": [], "token_rsa": []}
        for _ in range(repetitions):
            for name, key in (("file", file_key), ("token", token_key)):
                figures[f"{name}_package"].append(rate(lambda key=key: sign_package(data, key), seconds))
                figures[f"{name}_rsa"].append(rate(
                    lambda key=key: key.private_key.sign(b"x" * 32, padding.PKCS1v15(), hashes.SHA256()),
                    seconds))
        token_key.close()
    medians = {name: round(statistics.median(values), 1) for name, values in figures.items()}
    medians["token_over_file_package"] = round(medians["token_package"] / medians["file_package"], 2)
    medians["token_over_file_rsa"] = round(medians["token_rsa"] / medians["file_rsa"], 2)
    print(json.dumps({"bench": "token", "quick": args.quick, "repetitions": repetitions,
                      "seconds_each": seconds, "per_second": medians}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
