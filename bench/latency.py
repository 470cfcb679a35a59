"""Latency of usage on `make local`: from `POST /usage` to the balance holding the event.

Two figures per event: from the 202 reaching the sender (0 when the balance already held the event, which is often:
the drawdown may commit before the 202 gets back), and from the request leaving the sender (the 202 included).

The local server runs in this process (as `make local` runs it, every event source on its own worker); senders
are threads posting one event per request over HTTP, each waiting for its event to be drawn before sending the
next. An event counts as in the balance when the drawdown function returns from the invocation that committed it
(observed by wrapping the stack's invoke: no polling, so measuring adds no load). Reported for 1 and for 20
concurrent senders: p50, p90, p99 and max, with the machine's load average before and after.

Then steady traffic on the usage queue, as a SaaS's producers would send it: `--queue-rate` one-event messages
a second (sent 10 to a `SendMessageBatch` by `--producers` threads in a process of their own, each event to one
of 20 wallets at random) for `--queue-seconds`, through the server's pollers (the ingest's batching window, five
pollers, the drawdown's FIFO). Reported: the rate the stack drew them at (events ÷ time from the first event drawn
to the last) against the issue's target of 200 events/s, how long after the last send the last event was drawn
(about the batching window when the stack kept up with what was sent; more, and growing with the run, when it fell
behind), and the time from each event's send to its draw. The rate the producers managed is shown too.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import logging
import multiprocessing
import os
import random
import threading
import time
import urllib.request
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

from prepaid_demo.catalog import SEED
from prepaid_local.server import LocalServer, start

PRICE = {"amount": "1000.00", "currency": "USD"}
TARGET_QUEUE_RATE = 200.0  # events/s of steady traffic the local stack should keep up with
QUEUE_WALLETS = 20
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post(server: LocalServer, path: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        server.url + path, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with _HTTP.open(request, timeout=60) as answer:
        return answer.status, json.loads(answer.read())


class DrawnWatch:
    """When each event id was drawn: set by the drawdown function's invocations returning."""

    def __init__(self, server: LocalServer) -> None:
        self._drawn: dict[str, float] = {}
        self._waiting: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        stack = server.stack
        invoke = stack.invoke

        def watched(logical: str, event: dict[str, Any]) -> Any:
            answer = invoke(logical, event)
            if logical == "DrawdownFunction":
                done = time.perf_counter()
                failed = {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])}
                for record in event["Records"]:
                    if record["messageId"] not in failed:
                        self._mark([e["eventId"] for e in json.loads(record["body"])["events"]], done)
            return answer

        stack.invoke = watched  # type: ignore[method-assign,assignment]  # the pollers call it, not the API

    def _mark(self, event_ids: list[str], at: float) -> None:
        with self._lock:
            for event_id in event_ids:
                self._drawn.setdefault(event_id, at)
                waiting = self._waiting.pop(event_id, None)
                if waiting is not None:
                    waiting.set()

    def wait(self, event_id: str, timeout: float) -> float:
        with self._lock:
            if event_id in self._drawn:
                return self._drawn[event_id]
            ready = self._waiting.setdefault(event_id, threading.Event())
        if not ready.wait(timeout):
            raise TimeoutError(f"{event_id} not drawn within {timeout} s")
        return self._drawn[event_id]


@dataclass(frozen=True)
class Timing:
    """One event's way, in perf_counter seconds."""

    sent: float
    accepted: float
    drawn: float

    @property
    def after_202(self) -> float:
        return max(0.0, self.drawn - self.accepted)

    @property
    def from_send(self) -> float:
        return self.drawn - self.sent


def sender(server: LocalServer, watch: DrawnWatch, customer: str, events: int, timings: list[Timing]) -> None:
    for _ in range(events):
        event_id = f"lat-{uuid.uuid4().hex}"
        at = datetime.now(UTC).isoformat()
        event = {"eventId": event_id, "customerId": customer, "meter": "api_calls", "quantity": "1", "timestamp": at}
        sent = time.perf_counter()
        status, answer = post(server, "/usage", {"events": [event]})
        accepted = time.perf_counter()
        if status != 202 or answer["accepted"] != [event_id]:
            raise RuntimeError(f"not accepted: {status} {answer}")
        timings.append(Timing(sent, accepted, watch.wait(event_id, timeout=120)))


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def summary(latencies: Sequence[float]) -> dict[str, int]:
    """p50, p90, p99 and max in milliseconds."""
    shares = {"p50_ms": 0.5, "p90_ms": 0.9, "p99_ms": 0.99}
    return {
        **{name: round(percentile(latencies, share) * 1000) for name, share in shares.items()},
        "max_ms": round(max(latencies) * 1000),
    }


def run(server: LocalServer, watch: DrawnWatch, senders: int, events_each: int) -> dict[str, Any]:
    timings: list[Timing] = []
    threads = [
        threading.Thread(target=sender, args=(server, watch, f"lat-{senders}-{n}", events_each, timings))
        for n in range(senders)
    ]
    for n in range(senders):
        status, _ = post(server, f"/wallets/lat-{senders}-{n}/purchases", {"credits": "1000000", "price": PRICE})
        assert status == 201
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "senders": senders,
        "events": len(timings),
        "after_202": summary([t.after_202 for t in timings]),
        "from_send": summary([t.from_send for t in timings]),
        "events_per_s": round(len(timings) / elapsed, 1),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def produce(
    moto_url: str, url: str, customers: list[str], rate: int, seconds: int, producers: int
) -> tuple[dict[str, float], float]:
    """Send `rate` one-event messages a second to the usage queue for `seconds`, 10 to a `SendMessageBatch`, each
    to a customer at random (seeded), from `producers` threads at once (a SaaS has many producers; one thread
    waiting for each answer would measure its own round trips): (when each event was sent, how long sending
    took), in `perf_counter` seconds, which are the machine's monotonic clock and so agree across
    processes."""
    sqs = boto3.client(
        "sqs", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )
    chosen = random.Random(12)  # producers' events arrive in no order of customers

    def send(batch: list[tuple[str, str]], at: str) -> dict[str, float]:
        bodies = [
            {"eventId": e, "customerId": c, "meter": "api_calls", "quantity": "1", "timestamp": at} for e, c in batch
        ]
        entries: list[Any] = [{"Id": str(i), "MessageBody": json.dumps(b)} for i, b in enumerate(bodies)]
        now = time.perf_counter()
        if sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed"):
            raise RuntimeError("a usage message was not sent")
        return dict.fromkeys((e for e, _ in batch), now)

    sent: dict[str, float] = {}
    started = time.perf_counter()
    with ThreadPoolExecutor(producers) as pool:
        for second in range(seconds):
            at = datetime.now(UTC).isoformat()
            batches = [
                [(f"queue-{uuid.uuid4().hex}", chosen.choice(customers)) for _ in range(10)] for _ in range(0, rate, 10)
            ]
            for times in pool.map(functools.partial(send, at=at), batches):
                sent.update(times)
            time.sleep(max(0.0, started + second + 1 - time.perf_counter()))  # the next second's messages
    return sent, time.perf_counter() - started


def steady_queue(server: LocalServer, watch: DrawnWatch, rate: int, seconds: int, producers: int) -> dict[str, Any]:
    """`rate` one-event messages a second on the usage queue for `seconds`: the rate the stack drew them at, and
    each event's time from send to draw."""
    customers = [f"queue-{n}" for n in range(QUEUE_WALLETS)]
    for customer in customers:
        status, _ = post(server, f"/wallets/{customer}/purchases", {"credits": "1000000", "price": PRICE})
        assert status == 201
    load_before = os.getloadavg()[0]
    # the producers in a process of their own, as a SaaS's producers are: in this one they would take the server's
    # CPU (and the GIL), and send slower than offered
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as producer:
        producer.submit(time.perf_counter).result()  # the worker up and its imports done before sending starts
        sending = producer.submit(
            produce, server.moto_url, server.stack.name("UsageQueue"), customers, rate, seconds, producers
        )
        sent, sending_s = sending.result()
    drawn = {event_id: watch.wait(event_id, timeout=600) for event_id in sent}
    return {
        "offered_per_s": rate,
        "seconds": seconds,
        "producers": producers,
        "events": len(sent),
        "sending_s": round(sending_s, 1),
        "sent_per_s": round(len(sent) / sending_s, 1),
        # the stack's pace: from the first event drawn to the last; when it keeps up, the rate it was sent at (each
        # draw comes about one batching window after its send); when it falls behind, less
        "drawn_per_s": round(len(sent) / (max(drawn.values()) - min(drawn.values())), 1),
        # what the stack still had to do once the last message was sent: the batching window if it kept up
        "drained_after_last_send_ms": round((max(drawn.values()) - max(sent.values())) * 1000),
        "from_send": summary([drawn[e] - sent[e] for e in sent]),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=400, help="events per run (default 400)")
    parser.add_argument("--queue-rate", type=int, default=250, help="usage-queue events/s offered (default 250)")
    parser.add_argument("--queue-seconds", type=int, default=20, help="seconds of usage-queue traffic (default 20)")
    parser.add_argument("--producers", type=int, default=4, help="usage-queue producer threads (default 4)")
    args = parser.parse_args(argv)
    server = start(port=0, moto_port=0, seed=SEED, stripe_port=0)
    # The functions' JSON logs and metric lines would bury the table: the logs at ERROR, the metric lines to nowhere
    # (Powertools prints them to stdout as it finds it). A failed request still shows: the server logs to stderr.
    logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"]).setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            watch = DrawnWatch(server)
            run(server, watch, 1, 5)  # warm-up: cold starts of the handlers, not counted
            results = [
                run(server, watch, 1, max(1, args.events // 4)),
                run(server, watch, 20, max(1, args.events // 20)),
            ]
            queue = steady_queue(server, watch, args.queue_rate, args.queue_seconds, args.producers)
        finally:
            server.stop()
    print(f"latency of usage on make local, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores")
    columns = ("p50_ms", "p90_ms", "p99_ms", "max_ms")
    print(f"{'':15} {'after the 202 (ms)':^31}   {'from the request sent (ms)':^31}")
    print(f"{'senders':>7} {'events':>7} " + " ".join(f"{c[:3]:>7}" for c in columns * 2) + f" {'ev/s':>6}  load")
    for r in results:
        figures = [r["after_202"][c] for c in columns] + [r["from_send"][c] for c in columns]
        print(
            f"{r['senders']:>7} {r['events']:>7} "
            + " ".join(f"{f:>7}" for f in figures)
            + f" {r['events_per_s']:>6}  {r['load_average'][0]} -> {r['load_average'][1]}"
        )
    verdict = "met" if queue["drawn_per_s"] >= TARGET_QUEUE_RATE else "NOT met"
    print(
        f"usage queue, {queue['offered_per_s']} events/s offered for {queue['seconds']} s by {queue['producers']} "
        f"producers ({queue['events']} events, sent in {queue['sending_s']} s, {queue['sent_per_s']}/s): drawn at "
        f"{queue['drawn_per_s']} events/s (first draw to last) against {TARGET_QUEUE_RATE:.0f}: {verdict}; the last "
        f"{queue['drained_after_last_send_ms']} ms after the last send; send to drawn p50 "
        f"{queue['from_send']['p50_ms']} ms, p99 "
        f"{queue['from_send']['p99_ms']} ms, max {queue['from_send']['max_ms']} ms; load "
        f"{queue['load_average'][0]} -> {queue['load_average'][1]}"
    )
    print(json.dumps({"latency": results, "usage_queue": queue}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
