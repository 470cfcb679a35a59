"""The stack on HTTP: API Gateway's proxy integration over werkzeug, with moto embedded as the AWS back end.

`start()` runs everything in this process: moto's server (DynamoDB made atomic per request), the template's
resources created in it, the real handlers answering HTTP requests as API Gateway would call them, and a thread
that does what Lambda's pollers and EventBridge would (the outbox stream to the publisher, queues, rules, schedules
due at the stack's clock), so events reach the bus and their subscribers in near real time.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from werkzeug.datastructures import Headers
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from prepaid_local.apigateway import LOCAL_PRINCIPAL, gateway_answer
from prepaid_local.bus_tap import BusTap
from prepaid_local.clock import ProcessClock
from prepaid_local.moto_serial import serialize_moto
from prepaid_local.moto_speed import speed_up_moto
from prepaid_local.stack import Stack
from prepaid_local.stripe_standin import StripeStandIn

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger("prepaid_local")

REGION = "us-east-1"
MOTO_HOST = "127.0.0.1"
PUMP_INTERVAL = 0.2  # seconds between polls of the bus's rules and the schedules when there is nothing to do
STREAM_POLL_INTERVAL = 0.1  # the same for the table's stream (Lambda polls a shard about 4 times a second)
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
LOCAL_EVENTS_PATH = "/_local/events"  # not an API route: what went through the bus, for people trying it out
STRIPE_WEBHOOK_PATH = "/payments/stripe/webhook"
LOCAL_CLOCK_PATH = "/_local/clock"  # not an API route: read or move the local clock (schedules, expiry, grants)
# Settings that could point a handler's boto3 client anywhere but the embedded moto (a profile, real keys,
# a per-service endpoint, endpoints in ~/.aws/config); they are removed while the local stack runs.
_UNSET = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")
_UNSET_PREFIXES = ("AWS_ENDPOINT_URL_", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")


class LocalServer:
    """A running local stack: the API at `url`, moto at `moto_url`. `stop()` ends both and restores the env."""

    def __init__(
        self,
        *,
        stack: Stack,
        bus: BusTap,
        http: BaseWSGIServer,
        moto: ThreadedMotoServer,
        in_process: Any,
        url: str,
        moto_url: str,
        saved_env: dict[str, str],
        stripe: StripeStandIn,
        deliver: bool = True,
    ) -> None:
        self.stack = stack
        self.stripe = stripe
        self.url = url
        self.moto_url = moto_url
        self.seeded: Path | None = None  # the seed file sent through the API at start
        self._http = http
        self._moto = moto
        self._in_process = in_process
        self._saved_env = saved_env
        self._stopping = threading.Event()
        self.bus = bus
        self._threads = [threading.Thread(target=http.serve_forever, name="prepaid-local-http", daemon=True)]
        if deliver:
            self._threads += [
                threading.Thread(target=_work, args=(name, step, self._stopping, idle), name=name, daemon=True)
                for name, step, idle in _workers(stack, bus)
            ]
        self._stopped = False

    def serve(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the HTTP server, the pump and moto (in that order); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        self.stripe.stop()
        self._http.shutdown()
        for thread in self._threads:
            thread.join(timeout=10)  # a pump mid-batch finishes it; a stuck handler must not hang the exit
        try:
            _reset_moto(self.moto_url)  # moto's backends are process-wide: leave them empty for whoever comes next
        except OSError:
            log.warning("could not reset moto before stopping it", exc_info=True)
        self._moto.stop()
        self._in_process.stop(remove_data=False)
        self.stack.cold_start()  # the handlers' cached clients point at the moto that just stopped
        self.stack.clock.stop()
        _restore_environment(self._saved_env)
        boto3.DEFAULT_SESSION = None

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start(
    host: str = "127.0.0.1",
    port: int = 3000,
    moto_port: int = 4566,
    seed: Path | None = None,
    deliver: bool = True,
    stripe_port: int = 12111,
) -> LocalServer:
    """Start moto, create the stack in it, and serve the API; port 0 picks a free port. Returns once serving.
    `seed`: a JSON file of requests (`method`, `path`, `body`) sent through the API first, as a user would.
    `deliver=False` leaves out the background delivery (streams, rules, schedules, queues): for a caller that
    drives the functions itself and wants no other work competing with it. `stripe_port`: the Stripe stand-in's
    (the payments secret holds its keys, and the stripe library is pointed at it)."""
    saved_env = dict(os.environ)
    serialize_moto()  # class-level patches of moto's backends, which the embedded server runs in this process
    speed_up_moto()
    moto = _MotoServer(MOTO_HOST, moto_port, verbose=False)
    moto.start()
    in_process, in_process_started = mock_aws(), False
    # The whole process follows the local clock, so moving it (POST /_local/clock) makes schedules fire and the
    # handlers they run see the time they fired at.
    clock = ProcessClock()
    try:
        moto_host, bound_moto_port = moto.get_host_and_port()
        moto_url = f"http://{moto_host}:{bound_moto_port}"
        _reset_moto(moto_url)  # an earlier in-process mock_aws or server may have left data in the shared backends
        # The handlers (and the stack itself) call moto in this process, on the backends the server serves: no
        # HTTP, socket or thread per call. Clients outside (the AWS CLI, the demo, the tests) use the server.
        in_process.start(reset=False)
        in_process_started = True
        _apply_local_environment()
        boto3.setup_default_session()  # a session built from the environment just set, not an earlier one

        @cache
        def clients(service: str) -> Any:
            return boto3.client(service, region_name=REGION)  # type: ignore[call-overload]

        stack = Stack(clients, clock=clock, raise_failures=False)
        stripe = StripeStandIn(host=MOTO_HOST, port=stripe_port)
        stripe.start()
        connect_stripe(stack, stripe)
        stack.cold_start()
        if seed is not None:
            _seed(stack, seed)
        bus = BusTap(stack.clients, stack.name("EventBus"))
        http = make_server(host, port, _ApiGateway(stack, bus), threaded=True, request_handler=_AccessLog)
        stripe.webhook_url = f"http://{host}:{http.server_port}{STRIPE_WEBHOOK_PATH}"
    except BaseException:
        if "stripe" in locals():
            stripe.stop()
        moto.stop()
        if in_process_started:
            in_process.stop(remove_data=False)
        clock.stop()
        _restore_environment(saved_env)
        raise
    url = f"http://{host}:{http.server_port}"
    server = LocalServer(
        stack=stack,
        bus=bus,
        http=http,
        moto=moto,
        in_process=in_process,
        url=url,
        moto_url=moto_url,
        saved_env=saved_env,
        stripe=stripe,
        deliver=deliver,
    )
    server.seeded = seed
    server.serve()
    return server


def banner(server: LocalServer) -> str:
    """What to print on start: where things are and how to reach them."""
    table, bus = server.stack.name("WalletTable"), server.stack.name("EventBus")
    price_book = (
        f"seeded from {server.seeded}"
        if server.seeded
        else "empty (run with --seed, or PUT /price-book and /rate-card)"
    )
    return f"""
prepaid-credits is running locally (real handlers, embedded moto)

  API          {server.url}   unsigned requests act as {LOCAL_PRINCIPAL["userArn"]}
  moto (AWS)   {server.moto_url}
  Stripe       {server.stripe.url}   (a stand-in: customers cus_demo pays, cus_declined is declined)
  table        {table}
  event bus    {bus}
  catalog      {price_book}
  usage queue  {server.stack.name("UsageQueue")}
  bus events   {server.url}{LOCAL_EVENTS_PATH}?type=Balance%20Low   (local only: what went through the bus)
  clock        {server.url}{LOCAL_CLOCK_PATH}   (local only: POST {{"advance": "P1D"}} moves time forward)

Try:
  curl -s -X POST {server.url}/wallets/acme/purchases -H 'Content-Type: application/json' -d '{{"credits":"1000"}}'
  curl -s {server.url}/wallets/acme
  curl -s -X POST {server.url}/usage -H 'Content-Type: application/json' \\
    -d '{{"events":[{{"eventId":"e1","customerId":"acme","meter":"api_calls","quantity":"10",'\\
'"timestamp":"'$(date -u +%FT%TZ)'"}}]}}'

AWS CLI / boto3 against the embedded moto:
  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION={REGION}
  aws --endpoint-url {server.moto_url} dynamodb scan --table-name {table}
  aws --endpoint-url {server.moto_url} events list-rules --event-bus-name {bus}
  boto3.client("dynamodb", endpoint_url="{server.moto_url}", region_name="{REGION}")

Data lives in memory and is gone when this stops. Ctrl-C stops.
"""


# -- moto -------------------------------------------------------------------------------------------------------------


class _KeepAliveMotoHandler(MotoRequestHandler):
    """moto's request handler on HTTP/1.1: botocore's connection pool keeps each connection (and its server thread)
    for the next call, where HTTP/1.0 closed it after every one, a new socket and thread per AWS call. Requests are
    not logged: every handler's every call would be a line."""

    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class _MotoServer(ThreadedMotoServer):
    """moto's threaded server, kept alive between calls, and where a port it cannot bind is an error rather than a
    hang (moto 5.2.5 binds in its thread and `start()` waits for a "ready" event that a failed bind never sets)."""

    def __init__(self, ip_address: str, port: int, verbose: bool = False) -> None:
        super().__init__(ip_address, port, verbose)
        self.error: BaseException | None = None

    def _server_entry(self) -> None:
        try:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=_KeepAliveMotoHandler)
            self._server_ready_event.set()
            self._server.serve_forever()
        except BaseException as error:
            self.error = error
            self._server_ready_event.set()

    def start(self) -> None:
        super().start()
        if self.error is not None:
            raise self.error


def connect_stripe(stack: Stack, stripe: StripeStandIn) -> None:
    """Payments on, through the stand-in: its keys in the payments secret, the stripe library pointed at it."""
    keys = {"apiKey": stripe.api_key, "webhookSecret": stripe.webhook_secret}
    stack.clients("secretsmanager").put_secret_value(
        SecretId=stack.name("PaymentsSecret"), SecretString=json.dumps(keys)
    )
    os.environ["STRIPE_API_BASE"] = stripe.url


def _reset_moto(moto_url: str) -> None:
    # moto's documented reset endpoint; no proxy, whatever the environment says, as moto is on loopback
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    opener.open(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10).close()


# -- environment -----------------------------------------------------------------------------------------------------


def _apply_local_environment() -> None:
    """Fake credentials for every boto3 client, and no setting that would send one anywhere but moto."""
    for key in list(os.environ):
        if key in _UNSET or key.startswith(_UNSET_PREFIXES) or key == "AWS_ENDPOINT_URL":
            del os.environ[key]
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    os.environ.update(
        {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",  # botocore 1.44 + moto's DynamoDB Streams (TOOLING.md)
            "POWERTOOLS_METRICS_NAMESPACE": "PrepaidCreditsLocal",  # the template's value wins where it sets one
            "WEBHOOK_ALLOW_LOCAL_HTTP": "1",  # webhooks to receivers on 127.0.0.1 over plain http (never deployed)
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }
    )


def _restore_environment(saved: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(saved)


def _seed(stack: Stack, requests: Path) -> None:
    """Send each request of the file through the API, as a user would; any answer but a 2xx stops the start."""
    for request in json.loads(requests.read_text()):
        method, path, body = request["method"], request["path"], request.get("body")
        answer = stack.proxy(method, path, headers={"Content-Type": "application/json"}, body=json.dumps(body))
        if not 200 <= answer.get("statusCode", 500) < 300:
            raise RuntimeError(f"seeding {method} {path} failed: {answer.get('statusCode')} {answer.get('body')}")


# -- pollers ---------------------------------------------------------------------------------------------------------


def _workers(stack: Stack, bus: BusTap) -> list[tuple[str, Callable[[], int], float]]:
    """What Lambda's pollers and EventBridge do, each event source on a worker of its own (as on AWS, where the
    drawdown never waits for the outbox relay or a lifecycle function): (name, one poll, idle wait in seconds)."""

    def events() -> int:
        done = stack.pump_rules(fast_forward=False) + stack.pump_schedules()
        bus.drain()
        return done

    workers: list[tuple[str, Callable[[], int], float]] = [
        ("prepaid-local-streams", partial(stack.pump_streams, batching_windows=True), STREAM_POLL_INTERVAL),
        ("prepaid-local-events", events, PUMP_INTERVAL),
    ]
    for logical, props in stack.event_sources("SQS"):
        # long polling: a message is taken the moment it arrives, and an idle queue costs one call a second per poller
        for poller in range(stack.pollers(props)):
            poll = partial(stack.pump_source, logical, props, wait_seconds=1, poller=poller)
            workers.append((f"prepaid-local-{logical}-{poller}", poll, 0))
    return workers


def _work(name: str, step: Callable[[], int], stopping: threading.Event, idle: float) -> None:
    """Poll until stopped; at once again while there is work, after `idle` seconds when there is none. Real waits
    are kept (no fast-forward): a failed message comes back after its visibility timeout, a failed asynchronous
    invocation is retried after Lambda's delays. A function that fails is the stack's to log; what reaches here
    is the stack's own trouble, logged once per kind."""
    last_error: str | None = None
    while not stopping.is_set():
        try:
            busy = step()
        except Exception as error:
            text = f"{type(error).__name__}: {error}"
            if text != last_error:
                log.exception("%s failed; retrying every %.1f s", name, idle)
            last_error, busy = text, 0
        else:
            if last_error is not None:
                log.info("%s recovered", name)
            last_error = None
        if not busy:
            stopping.wait(idle)


# -- HTTP ------------------------------------------------------------------------------------------------------------


class _ApiGateway:
    """A WSGI app doing what API Gateway's Lambda proxy integration does with a request and the handler's answer."""

    def __init__(self, stack: Stack, bus: BusTap) -> None:
        self.stack = stack
        self.bus = bus

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        response = self.handle(Request(environ))
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        if request.path == LOCAL_EVENTS_PATH:
            return self.bus_events(request)
        if request.path == LOCAL_CLOCK_PATH:
            return self.clock(request)
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _response(gateway_answer(self.stack.gateway.responses, "REQUEST_TOO_LARGE"))
        raw = request.get_data(cache=False)
        try:
            body: str | None = raw.decode() if raw else None
            base64_body = False
        except UnicodeDecodeError:
            body, base64_body = base64.b64encode(raw).decode(), True
        headers = dict(request.headers.items())  # a repeated header keeps its last value, as in API Gateway's `headers`
        query = request.query_string.decode(errors="replace")
        try:
            answer = self.stack.proxy(
                request.method, request.path, query=query, headers=headers, body=body, base64_body=base64_body
            )
            return _response(answer)
        except Exception:
            # A handler that raises or answers malformed is a failed integration: 502, nothing of the error leaks.
            log.exception("%s %s: the function failed", request.method, request.path)
            return _response(gateway_answer(self.stack.gateway.responses, "INTEGRATION_FAILURE"))

    def bus_events(self, request: Request) -> Response:
        """Local only: the events that went through the bus, newest last (`?type=Balance Low&limit=20`)."""
        events = self.bus.drain()
        kind = request.args.get("type")
        if kind:
            events = [e for e in events if e.get("detail-type") == kind]
        limit = request.args.get("limit", "100")
        shown = events[-int(limit) :] if limit.isdigit() and int(limit) > 0 else events
        return Response(json.dumps({"events": shown}), status=200, content_type="application/json")

    def _deliver(self, failure: str) -> None:
        """Everything the pollers would do, until quiet, at the clock as it stands (waits are not skipped); what went
        through the bus kept for `GET /_local/events`."""
        try:
            self.stack.pump(fast_forward=False)
        except Exception:
            log.exception(failure)
        self.bus.drain()

    def clock(self, request: Request) -> Response:
        """Local only: `GET` the clock; `POST {"advance": "P1D"}` or `{"to": "<instant>"}` moves it forward (never
        back), then runs what came due (schedules, retries) before answering. What is under way when it is asked
        (an event on its way to a function, a message on a queue) arrives first, at the time it was sent: on AWS it
        would have within seconds, and a jump of days must not age it past a queue's retention."""
        if request.method == "POST":
            try:
                move = _CLOCK_MOVE.validate_json(request.get_data() or b"{}")
            except ValidationError as error:
                message = json.dumps({"error": {"code": "validation_error", "message": str(error)}})
                return Response(message, status=422, content_type="application/json")
            self._deliver("delivering what was under way failed; the workers retry it")
            if move.advance is not None:
                self.stack.advance(move.advance.total_seconds())
            if move.to is not None:
                self.stack.set_time(move.to)
            self._deliver("delivering what came due failed; the workers retry it")
        return Response(json.dumps({"now": self.stack.clock.now().isoformat()}), content_type="application/json")


class _ClockMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    advance: timedelta | None = Field(default=None, ge=timedelta(0))
    to: AwareDatetime | None = None


_CLOCK_MOVE = TypeAdapter(_ClockMove)


def _response(answer: dict[str, Any]) -> Response:
    """The handler's answer as API Gateway returns it: `headers` merged into `multiValueHeaders`, body decoded."""
    raw = answer.get("body") or ""
    data = base64.b64decode(raw) if answer.get("isBase64Encoded") else str(raw).encode()
    headers = Headers()
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        for value in values:
            headers.add(name, str(value))
    for name, value in (answer.get("headers") or {}).items():
        if str(value) not in headers.getlist(name):
            headers.add(name, str(value))
    if "Content-Type" not in headers:
        headers["Content-Type"] = "application/json"  # API Gateway's default for a proxy answer
    return Response(data, status=int(answer["statusCode"]), headers=headers)


class _AccessLog(WSGIRequestHandler):
    """Log API requests to our logger, plain, so werkzeug's own (which moto's server also uses) can stay quiet. As
    the template's API access log, without the query string (a client may put a secret there)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        method, _, rest = self.requestline.partition(" ")
        target, _, protocol = rest.rpartition(" ")
        log.info('%s "%s %s %s" %s', self.address_string(), method, target.split("?", 1)[0], protocol, code)

    def log(self, type: str, message: str, *args: Any) -> None:
        level = logging.getLevelNamesMapping().get(type.upper(), logging.INFO)
        log.log(level, "%s " + message, self.address_string(), *args)
