"""``edxml-connector axis-sim``: run the local axis simulator until SIGTERM/SIGINT.

Imports inside the handlers are deliberate: every command module is imported to register its
arguments, so what one command needs (the pipelines, lxml, cryptography, SQLAlchemy, rich...)
is imported by that command only. ``edxml-connector --help`` takes ≈ 0.35 s this way;
importing all of it first would add ≈ 0.8 s (measured 2026-12-07, this machine).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from connector.errors import InputError


def register(subparsers) -> None:
    """Add this group's sub-commands."""
    parser = subparsers.add_parser(
        "axis-sim", help="run a local axis simulator (tests, demo, DMS rehearsal)",
        description="Serve the axis API at http://HOST:PORT/<operation> with state in DIR. "
                    "Admin endpoints (loopback only): GET /_admin/transfers, GET /_admin/counters,"
                    " GET|POST /_admin/faults.")
    parser.add_argument("--listen", default="127.0.0.1:8640", metavar="HOST:PORT",
                        help="address to serve on (default 127.0.0.1:8640)")
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="state directory (SQLite + package files); kept across restarts")
    parser.add_argument("--agencies", required=True, metavar="FILE",
                        help="agencies YAML: organ_id, name, systemid, secret per agency")
    parser.add_argument("--directory", default=None, metavar="FILE",
                        help="more agencies to list than those who call: JSON lines "
                             '{"code", "name", "pid", "mail", "oldCode"} (e.g. 100,000 of them)')
    parser.add_argument("--seed", type=int, default=None, help="seed for fault injection")
    parser.add_argument("--timestamp-window", type=float, default=None, metavar="SECONDS",
                        help="refuse requests whose timestamp is further from now (off by "
                             "default: the official SDK freezes its timestamp)")
    parser.add_argument("--tls-cert", default=None, metavar="PEM",
                        help="serve HTTPS with this certificate (chain) instead of HTTP")
    parser.add_argument("--tls-key", default=None, metavar="PEM",
                        help="the private key of --tls-cert")
    faults = parser.add_argument_group("fault injection (also changeable at run time through "
                                       "POST /_admin/faults)")
    faults.add_argument("--error-rate", type=float, default=0.0, metavar="R",
                        help="fraction of requests answered with HTTP 503")
    faults.add_argument("--error-status", type=int, default=503, metavar="CODE",
                        help="HTTP status of injected errors (default 503)")
    faults.add_argument("--latency-ms", type=float, default=0.0, metavar="MS",
                        help="added to every request")
    faults.add_argument("--hang-rate", type=float, default=0.0, metavar="R",
                        help="fraction of requests left unanswered for --hang-seconds")
    faults.add_argument("--hang-seconds", type=float, default=30.0, metavar="S")
    faults.add_argument("--reset-rate", type=float, default=0.0, metavar="R",
                        help="fraction of connections reset before the request is read")
    faults.add_argument("--malformed-rate", type=float, default=0.0, metavar="R",
                        help="fraction of requests answered with a body that is not JSON")
    faults.add_argument("--lose-response-rate", type=float, default=0.0, metavar="R",
                        help="fraction of requests carried out but never answered")
    faults.add_argument("--relist-acked", action="store_true",
                        help="keep listing items already acknowledged done")
    faults.add_argument("--fault-operations", default=None, metavar="OP[,OP...]",
                        help="limit faults to these operations (e.g. sendEdoc)")
    parser.set_defaults(handler=run_simulator)


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InputError(f"--listen {text!r} is not HOST:PORT", hint="e.g. 127.0.0.1:8640")
    return host, int(port)


def run_simulator(args: argparse.Namespace) -> int:
    from connector.axis.sim.faults import FaultConfig
    from connector.axis.sim.server import AxisSimulator

    host, port = _listen_address(args.listen)
    faults = FaultConfig(
        error_rate=args.error_rate, error_status=args.error_status, latency_ms=args.latency_ms,
        hang_rate=args.hang_rate, hang_seconds=args.hang_seconds, reset_rate=args.reset_rate,
        malformed_rate=args.malformed_rate, lose_response_rate=args.lose_response_rate,
        relist_acked=args.relist_acked,
        operations=args.fault_operations.split(",") if args.fault_operations else None)
    # Built (agencies file, TLS files, fault settings checked) before anything global changes.
    simulator = AxisSimulator(args.data, args.agencies, host=host, port=port, faults=faults,
                              seed=args.seed, timestamp_window=args.timestamp_window,
                              tls_cert=args.tls_cert, tls_key=args.tls_key,
                              directory=args.directory)
    try:
        simulator.start()
    except OSError as error:
        raise InputError(f"cannot listen on {args.listen}: {error.strerror or error}",
                         hint="choose another --listen address or stop what holds it") from None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    sim_log = logging.getLogger("connector.axis.sim")
    sim_log.addHandler(handler)
    sim_log.setLevel(logging.INFO)
    sim_log.propagate = False
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"axis simulator listening on {simulator.url} ({len(simulator.agencies)} agencies, "
          f"state in {args.data}); admin at {simulator.admin_url}/", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        simulator.stop()
        print("axis simulator stopped", file=sys.stderr, flush=True)
    return 0
