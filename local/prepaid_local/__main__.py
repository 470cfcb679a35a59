"""`python -m prepaid_local`: run the stack on http://127.0.0.1:3000 until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from prepaid_local.server import banner, start
from prepaid_local.template import ROOT

DEMO_SEED = ROOT / "demo" / "seed.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prepaid_local", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address the API listens on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="API port (default 3000; 0 picks a free one)")
    parser.add_argument("--moto-port", type=int, default=4566, help="moto's port (default 4566; 0 picks a free one)")
    parser.add_argument(
        "--stripe-port", type=int, default=12111, help="the Stripe stand-in's port (default 12111; 0 picks a free one)"
    )
    parser.add_argument(
        "--seed",
        nargs="?",
        type=Path,
        const=DEMO_SEED,
        metavar="FILE",
        help=f"send a JSON file of requests through the API first (default {DEMO_SEED.relative_to(ROOT)}: the demo's"
        " price book and rate card)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # moto's server logs through werkzeug's logger, and the stream pump polls it five times a second
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)  # "found credentials" at every client built

    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        server = start(args.host, args.port, args.moto_port, seed=args.seed, stripe_port=args.stripe_port)
    except OSError as error:
        print(f"prepaid_local: cannot start: {error}", file=sys.stderr)
        return 1
    except SystemExit:
        # werkzeug has printed why (a port in use) and exits; add which flags choose other ports
        print(
            "prepaid_local: cannot start; choose other ports with --port / --moto-port / --stripe-port", file=sys.stderr
        )
        return 1
    print(banner(server), flush=True)
    stopping.wait()
    print("stopping...", flush=True)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
