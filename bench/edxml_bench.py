"""edXML build/sign/read/verify benchmark (``python -m bench.edxml_bench``), per docs/benchmarks.md.

Figures, each against a floor measured in the same run:
- build+sign of a package with a 100 KB attachment (``write_package`` + ``sign_package``, the
  signxml path) vs the raw primitives: base64 of the attachment, exclusive C14N of the tree,
  SHA-256, one RSA-2048 PKCS#1 v1.5 signature, one serialisation. Target: <= 2.5x the floor's time.
- read+verify of that package (``read_package`` + ``verify_package``) vs parse, exclusive C14N,
  SHA-256, one RSA verification and base64-decoding the attachment.
- peak RSS of build+sign (streaming ``write_package_to``) of a package with a 100 MB attachment,
  in a fresh subprocess, minus the RSS after imports, divided by the attachment size (target < 4);
  and the same (reported, no target) for verifying that package: ``verify_package(bytes)`` (the
  low-memory path is chosen automatically; the bytes themselves are counted), ``verify_package_file``
  and ``verify_package_signxml`` (the signxml path, i.e. the figure before the low-memory path).

Options: ``--quick`` (fewer repetitions, 20 MB for the memory figures) for a smoke run.
Results are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

BENCH = "edxml"


def _package(attachment: bytes | None = None, path: Path | None = None):
    from connector.edxml.identifiers import now_vietnam
    from connector.edxml.model import (
        Attachment,
        Business,
        Code,
        DocumentPackage,
        Organization,
        PromulgationInfo,
        StaffInfo,
        TraceHeader,
    )

    return DocumentPackage(
        from_=Organization(organ_id="000.00.00.G22", organ_name="Văn phòng Chính phủ", email="vpcp@gov.vn"),
        to=[Organization(organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An")],
        code=Code("7816", "VPCP-TTĐT"), promulgation_info=PromulgationInfo("Hà Nội", dt.date(2024, 5, 6)),
        subject="V/v kết nối, liên thông phần mềm quản lý văn bản", content="Nội dung",
        trace_headers=[TraceHeader("000.00.00.G22", now_vietnam())],
        business=Business(paper="0", staff_info=StaffInfo("Văn thư", "B", "vt@gov.vn", "0912")),
        attachments=[Attachment(name="scan.pdf", content_type="application/pdf", content_id="1",
                                data=attachment, path=path)])


def _time(function, repetitions: int, inner: int) -> list[float]:
    function()  # warm-up
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(inner):
            function()
        samples.append((time.perf_counter() - start) / inner)
    return samples


def _line(figure, value, unit, baseline=None, ratio=None, target=None, **extra):
    record = {"bench": BENCH, "figure": figure, "value": round(value, 4), "unit": unit,
              "baseline": None if baseline is None else round(baseline, 4),
              "ratio": None if ratio is None else round(ratio, 3), "target": target, **extra}
    print(json.dumps(record, ensure_ascii=False), flush=True)
    return record


def throughput(key, ca: Path, repetitions: int, inner: int) -> list[dict]:
    from connector.edxml.reader import read_package
    from connector.edxml.signing import sign_package, verify_package
    from connector.edxml.writer import WriterSettings, build_tree, prepare_package, serialize, write_package

    attachment = os.urandom(100 * 1024)
    package = prepare_package(_package(attachment))

    def build_sign():
        return sign_package(write_package(package), key)

    def floor_build():
        encoded = base64.b64encode(attachment).decode()
        root = build_tree(package, WriterSettings(), encoded_text=lambda a, i: encoded)
        canonical = etree.tostring(root, method="c14n", exclusive=True)
        digest = hashlib.sha256(canonical).digest()
        key.private_key.sign(digest + canonical[:64], padding.PKCS1v15(), hashes.SHA256())
        return serialize(root)

    signed = build_sign()
    public = key.certificate.public_key()
    signature = key.private_key.sign(signed[:512], padding.PKCS1v15(), hashes.SHA256())

    def read_verify():
        read_package(signed)
        result = verify_package(signed, trust=ca)
        assert result.valid, result.reason

    def floor_read():
        root = etree.fromstring(signed, etree.XMLParser(huge_tree=True, resolve_entities=False))
        hashlib.sha256(etree.tostring(root, method="c14n", exclusive=True)).digest()
        public.verify(signature, signed[:512], padding.PKCS1v15(), hashes.SHA256())
        for element in root.iter("{http://www.mic.gov.vn/TBT/QCVN_102_2016}ContentTransferEncoded"):
            base64.b64decode(element.text)

    results = []
    for figure, ours, floor, target in (("build+sign 100KB", build_sign, floor_build, 2.5),
                                        ("read+verify 100KB", read_verify, floor_read, None)):
        # Alternate ours and the floor so that machine noise hits both alike.
        ours_samples, floor_samples = [], []
        ours(), floor()
        for _ in range(repetitions):
            ours_samples += _time(ours, 1, inner)
            floor_samples += _time(floor, 1, inner)
        median, base = statistics.median(ours_samples), statistics.median(floor_samples)
        results.append(_line(f"{figure} packages/s", 1 / median, "packages/s", baseline=1 / base,
                             ratio=median / base, target=target,
                             note="ratio = our time / floor time",
                             min=round(1 / max(ours_samples), 2), max=round(1 / min(ours_samples), 2)))
    return results


def memory(kind: str, size: int, key_dir: Path, workdir: Path) -> dict:
    """Run one memory measurement in a fresh interpreter."""
    command = [sys.executable, "-m", "bench.edxml_bench", "--memory-child", kind, "--size", str(size),
               "--keys", str(key_dir), "--workdir", str(workdir)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600,
                            cwd=Path(__file__).resolve().parent.parent).stdout
    return json.loads(output.strip().splitlines()[-1])


# Verification variants measured: the automatic path (low-memory for such a package) given
# bytes, the same given the path (nothing read into memory first), and the signxml path (the
# "before" figure, measured in the same run).
VERIFY_KINDS = ("verify", "verify-file", "verify-signxml")


def _memory_child(kind: str, size: int, key_dir: Path, workdir: Path) -> None:
    from connector.edxml.keys import SigningKey
    from connector.edxml.signing import verify_package, verify_package_file, verify_package_signxml
    from connector.edxml.writer import write_package_to

    key = SigningKey.from_pem(key_dir / "agency-a.key", key_dir / "agency-a.pem")
    attachment = workdir / "attachment.bin"
    package_path = workdir / "package.edxml"
    if kind in VERIFY_KINDS and not package_path.exists():
        raise SystemExit("run build first")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if kind == "build":
        write_package_to(_package(path=attachment), package_path, signer=key, fsync=False)
    else:
        if kind == "verify-file":
            result = verify_package_file(package_path, trust=key_dir / "ca.pem")
        else:
            verify = verify_package if kind == "verify" else verify_package_signxml
            result = verify(package_path.read_bytes(), trust=key_dir / "ca.pem")
        assert result.valid, result.reason
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"baseline": baseline, "peak": peak, "ratio": (peak - baseline) / size}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--memory-child", choices=("build", *VERIFY_KINDS))
    parser.add_argument("--size", type=int, default=100 * 1024 * 1024)
    parser.add_argument("--keys", type=Path)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    if args.memory_child:
        _memory_child(args.memory_child, args.size, args.keys, args.workdir)
        return 0

    from connector.devtools.devcerts import make_dev_certs
    from connector.edxml.keys import SigningKey, read_password

    repetitions, inner = (5, 5) if args.quick else (7, 20)
    size = 20 * 1024 * 1024 if args.quick else args.size
    with tempfile.TemporaryDirectory(prefix="edxml-bench-") as temporary:
        temporary = Path(temporary)
        certs = make_dev_certs(temporary / "certs")
        key = SigningKey.from_pkcs12(certs.agency_a.p12, read_password(certs.agency_a.password_file))
        results = throughput(key, certs.ca_cert, repetitions, inner)
        with open(temporary / "attachment.bin", "wb") as handle:
            for _ in range(size // (1 << 20)):
                handle.write(os.urandom(1 << 20))
        for kind, figure, target in (("build", "build+sign peak RSS / attachment", 4.0),
                                     ("verify", "verify bytes peak RSS / attachment", None),
                                     ("verify-file", "verify file peak RSS / attachment", None),
                                     ("verify-signxml", "verify signxml peak RSS / attachment", None)):
            runs = 5 if kind == "build" else 3
            samples = [memory(kind, size, certs.directory, temporary) for _ in range(runs)]
            ratio = statistics.median(s["ratio"] for s in samples)
            results.append(_line(f"{figure} ({size // (1 << 20)} MB)", ratio, "x attachment size",
                                 target=target, runs=len(samples),
                                 min=round(min(s["ratio"] for s in samples), 3),
                                 max=round(max(s["ratio"] for s in samples), 3),
                                 peak_mb=round(samples[0]["peak"] / 2**20, 1),
                                 after_imports_mb=round(samples[0]["baseline"] / 2**20, 1)))
    print()
    print(f"{'figure':<48} {'value':>10} {'floor':>10} {'ratio':>7} {'target':>7}")
    for record in results:
        baseline = "" if record["baseline"] is None else f"{record['baseline']:.1f}"
        ratio = "" if record["ratio"] is None else f"{record['ratio']:.2f}"
        target = "" if record["target"] is None else f"{record['target']}"
        print(f"{record['figure']:<48} {record['value']:>10.2f} {baseline:>10} {ratio:>7} {target:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
