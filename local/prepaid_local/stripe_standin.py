"""A Stripe stand-in on 127.0.0.1 for `make local` and the tests: it answers what the stripe library sends for the
calls prepaid-credits makes (the library pointed at it by its API base), serves a hosted checkout page with Pay and
Cancel, and sends signed events to the webhook endpoint, as Stripe does.

Shapes follow Stripe's API reference for the fields used: PaymentIntents (create, confirmed off-session),
Checkout Sessions (create, retrieve, expire), Refunds, Customers (retrieve), errors (`card_error` with
`decline_code` and the PaymentIntent, `invalid_request_error`, `idempotency_error`), events (`payment_intent.*`,
`checkout.session.*`). A request with the same `Idempotency-Key` gets the first answer again, as Stripe's does.

Test payment methods, as Stripe's test mode names them: `pm_card_visa` succeeds, `pm_card_chargeDeclined` and
`pm_card_chargeDeclinedInsufficientFunds` are declined. Customers: `cus_demo` (default method `pm_card_visa`) and
`cus_declined` (`pm_card_chargeDeclined`); `add_customer` adds more.

Departures, on purpose: Cancel on the checkout page expires the session at once (Stripe lets an abandoned session
run out after 24 hours, then sends `checkout.session.expired`); events are delivered by a thread of this process,
retried a few times, not for three days.
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import queue
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import stripe
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from prepaid.domain.numbers import minor_units

log = logging.getLogger("prepaid_local.stripe")

DECLINES = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
}
SUCCEEDS = {"pm_card_visa", "pm_card_mastercard"}
_KEY = re.compile(r"[^\[\]]+")


def unflatten(form: list[tuple[str, str]]) -> dict[str, Any]:
    """The stripe library's form encoding (`metadata[cardId]=…`, `line_items[0][quantity]=1`) as nested values."""
    root: dict[str, Any] = {}
    for name, value in form:
        parts = _KEY.findall(name)
        node: Any = root
        for part, following in itertools.pairwise(parts):
            default: Any = [] if following.isdigit() else {}
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(None)
                node[index] = node[index] if node[index] is not None else default
                node = node[index]
            else:
                node = node.setdefault(part, default)
        last = parts[-1] if parts else name
        if isinstance(node, list):
            index = int(last)
            while len(node) <= index:
                node.append(None)
            node[index] = value
        else:
            node[last] = value
    return root


@dataclass
class Delivery:
    event_id: str
    event_type: str
    status: int | None  # the endpoint's HTTP status of the last attempt (None: unreachable)
    attempts: int


@dataclass
class StripeStandIn:
    """The stand-in's state and its HTTP server. `start()` serves on `url`; `webhook_url` receives the events."""

    host: str = "127.0.0.1"
    port: int = 0
    webhook_url: str | None = None
    api_key: str = field(default_factory=lambda: "sk_test_standin_" + secrets.token_hex(12))
    webhook_secret: str = field(default_factory=lambda: "whsec_" + secrets.token_hex(24))
    deliver: bool = True  # False: events are only kept in `events` (a test delivers them itself)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)  # every API request: method, path, params, key
    events: list[dict[str, Any]] = field(default_factory=list)  # every event sent, in order
    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._idempotent: dict[str, tuple[str, int, str]] = {}  # key -> (request fingerprint, status, body)
        self._outbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._server: BaseWSGIServer | None = None
        self._sending = threading.Event()  # cleared: events wait (a test looks at the card before it is paid)
        self._sending.set()
        self.add_customer("cus_demo", "pm_card_visa")
        self.add_customer("cus_declined", "pm_card_chargeDeclined")

    # -- running ---------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> StripeStandIn:
        self._server = make_server(self.host, self.port, self._wsgi, threaded=True)
        threading.Thread(target=self._server.serve_forever, name="stripe-standin", daemon=True).start()
        threading.Thread(target=self._sender, name="stripe-standin-events", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._outbox.put(None)

    def add_customer(self, customer_id: str, default_payment_method: str | None) -> None:
        self.customers[customer_id] = {
            "id": customer_id,
            "object": "customer",
            "invoice_settings": {"default_payment_method": default_payment_method},
        }

    def hold_events(self) -> None:
        """Keep events back until `release_events()`, as a slow webhook delivery would."""
        self._sending.clear()

    def release_events(self) -> None:
        self._sending.set()

    def wait_for_deliveries(self, count: int, timeout: float = 30.0) -> list[Delivery]:
        """Until `count` events were delivered (or given up on); generous by default: a loaded machine is slow."""
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.deliveries)

    # -- HTTP ------------------------------------------------------------------------------------------------------

    def _wsgi(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self._route(request)
        except Exception:  # a stand-in bug: answer as Stripe's 500 would, and say so in the log
            log.exception("stripe stand-in failed on %s %s", request.method, request.path)
            response = _error(500, "api_error", "the stand-in failed")
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        path, method = request.path.rstrip("/"), request.method
        if path.startswith("/checkout/"):
            return self._hosted_page(request, path.split("/")[2:])
        if not path.startswith("/v1/"):
            return _error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid_request_error", "Invalid API Key provided.")
        params = unflatten(list(request.form.items(multi=True))) if method == "POST" else dict(request.args)
        key = request.headers.get("Idempotency-Key")
        with self._lock:
            self.requests.append({"method": method, "path": path, "params": params, "idempotencyKey": key})
            if method == "POST" and key:
                fingerprint = json.dumps([path, params], sort_keys=True)
                if key in self._idempotent:
                    first, status, body = self._idempotent[key]
                    if first != fingerprint:
                        return _error(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same parameters they were first "
                            "used with.",
                        )
                    return Response(body, status, {"Idempotent-Replayed": "true"}, mimetype="application/json")
            response = self._api(method, path, params, key)
            if method == "POST" and key and response.status_code < 500:
                self._idempotent[key] = (fingerprint, response.status_code, response.get_data(as_text=True))
            return response

    def _api(self, method: str, path: str, params: dict[str, Any], key: str | None) -> Response:
        parts = path.split("/")[2:]
        if method == "GET" and len(parts) == 2 and parts[0] == "customers":
            return self._found(self.customers, parts[1], "customer")
        if method == "POST" and parts == ["payment_intents"]:
            return self._create_payment_intent(params, key)
        if method == "GET" and len(parts) == 2 and parts[0] == "payment_intents":
            return self._found(self.payment_intents, parts[1], "payment_intent")
        if method == "POST" and parts == ["checkout", "sessions"]:
            return self._create_session(params)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["checkout", "sessions"]:
            return self._found(self.sessions, parts[2], "checkout.session")
        if method == "POST" and len(parts) == 4 and parts[:2] == ["checkout", "sessions"] and parts[3] == "expire":
            session = self.sessions.get(parts[2])
            if session is None:
                return _missing("checkout.session", parts[2])
            self._expire(session)
            return _json(session)
        if method == "POST" and parts == ["refunds"]:
            return self._create_refund(params)
        return _error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    def _found(self, objects: dict[str, dict[str, Any]], object_id: str, kind: str) -> Response:
        found = objects.get(object_id)
        return _json(found) if found is not None else _missing(kind, object_id)

    # -- PaymentIntents ----------------------------------------------------------------------------------------

    def _create_payment_intent(self, params: dict[str, Any], key: str | None) -> Response:
        amount, currency = params.get("amount", ""), params.get("currency", "")
        if not str(amount).isdigit() or int(amount) < 1 or not re.fullmatch(r"[a-z]{3}", str(currency)):
            return _error(400, "invalid_request_error", "amount and currency are required", param="amount")
        customer = params.get("customer")
        if customer is not None and customer not in self.customers:
            return _error(
                400,
                "invalid_request_error",
                f"No such customer: '{customer}'",
                code="resource_missing",
                param="customer",
            )
        intent = {
            "id": _new_id("pi"),
            "object": "payment_intent",
            "amount": int(amount),
            "amount_received": 0,
            "currency": currency,
            "customer": customer,
            "payment_method": params.get("payment_method"),
            "metadata": params.get("metadata", {}),
            "description": params.get("description"),
            "status": "requires_payment_method",
            "created": int(time.time()),
            "livemode": False,
            "last_payment_error": None,
            "latest_charge": None,
        }
        self.payment_intents[intent["id"]] = intent
        if params.get("confirm") != "true":
            return _json(intent)
        method = intent["payment_method"]
        if method is None:
            return _error(
                400,
                "invalid_request_error",
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
                payment_intent=intent,
            )
        if method in DECLINES:
            error = {"type": "card_error", "code": "card_declined", "decline_code": DECLINES[method]}
            intent["last_payment_error"] = {**error, "message": "Your card was declined."}
            self._send("payment_intent.payment_failed", intent, key)
            return _error(
                402,
                "card_error",
                "Your card was declined.",
                code="card_declined",
                decline_code=DECLINES[method],
                payment_intent=intent,
            )
        if method not in SUCCEEDS:
            return _error(
                400,
                "invalid_request_error",
                f"No such PaymentMethod: '{method}'",
                code="resource_missing",
                param="payment_method",
            )
        self._succeed(intent, key)
        return _json(intent)

    def _succeed(self, intent: dict[str, Any], key: str | None) -> None:
        intent.update(status="succeeded", amount_received=intent["amount"], latest_charge=_new_id("ch"))
        self._send("payment_intent.succeeded", intent, key)

    # -- Checkout ----------------------------------------------------------------------------------------------

    def _create_session(self, params: dict[str, Any]) -> Response:
        items = params.get("line_items") or []
        try:
            price = items[0]["price_data"]
            total = int(price["unit_amount"]) * int(items[0].get("quantity", "1"))
            currency, name = price["currency"], price["product_data"]["name"]
        except (LookupError, TypeError, ValueError):
            return _error(400, "invalid_request_error", "line_items[0][price_data] is required", param="line_items")
        if params.get("mode") != "payment" or not params.get("success_url"):
            return _error(400, "invalid_request_error", "mode payment and a success_url are required")
        session_id = _new_id("cs_test")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": total,
            "currency": currency,
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"),
            "payment_intent": None,
            "url": f"{self.url}/checkout/{session_id}",
            "line_items_name": name,  # not Stripe's shape: what the page shows
            "created": int(time.time()),
            "livemode": False,
        }
        self.sessions[session_id] = session
        return _json({k: v for k, v in session.items() if k != "line_items_name"})

    def _hosted_page(self, request: Request, parts: list[str]) -> Response:
        session = self.sessions.get(parts[0]) if parts else None
        if session is None:
            return Response("<h1>No such checkout session</h1>", 404, mimetype="text/html")
        action = parts[1] if len(parts) > 1 else ""
        if request.method == "POST" and action in ("pay", "cancel"):
            with self._lock:
                if session["status"] == "open":
                    if action == "pay":
                        self._pay(session)
                    else:
                        self._expire(session)
            target = session["success_url"] if action == "pay" else (session["cancel_url"] or session["success_url"])
            return Response("", 303, {"Location": target.replace("{CHECKOUT_SESSION_ID}", session["id"])})
        # the amount in the currency's major unit, by the same minor-unit rule the API prices with (no float)
        amount = str(Decimal(session["amount_total"]).scaleb(-minor_units(session["currency"].upper())))
        return Response(
            _PAGE.format(
                name=html.escape(session["line_items_name"]),
                amount=html.escape(amount),
                currency=html.escape(session["currency"].upper()),
                status=html.escape(session["status"]),
                id=html.escape(session["id"]),
                disabled="" if session["status"] == "open" else "disabled",
            ),
            200,
            mimetype="text/html",
        )

    def _pay(self, session: dict[str, Any]) -> None:
        intent = {
            "id": _new_id("pi"),
            "object": "payment_intent",
            "amount": session["amount_total"],
            "amount_received": session["amount_total"],
            "currency": session["currency"],
            "customer": None,
            "payment_method": "pm_card_visa",
            "metadata": {},  # Checkout's PaymentIntent carries no metadata unless payment_intent_data says so
            "status": "requires_payment_method",
            "created": int(time.time()),
            "livemode": False,
        }
        self.payment_intents[intent["id"]] = intent
        self._succeed(intent, None)
        session.update(status="complete", payment_status="paid", payment_intent=intent["id"])
        self._send("checkout.session.completed", session, None)

    def _expire(self, session: dict[str, Any]) -> None:
        if session["status"] == "open":
            session["status"] = "expired"
            self._send("checkout.session.expired", session, None)

    # -- Refunds -----------------------------------------------------------------------------------------------

    def _create_refund(self, params: dict[str, Any]) -> Response:
        intent = self.payment_intents.get(str(params.get("payment_intent")))
        if intent is None or intent["status"] != "succeeded":
            return _error(
                400, "invalid_request_error", "No such payment_intent", code="resource_missing", param="payment_intent"
            )
        refunded = sum(r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent["id"])
        amount = int(params.get("amount", intent["amount"] - refunded))
        if amount < 1 or refunded + amount > intent["amount"]:
            return _error(
                400,
                "invalid_request_error",
                "Refund amount is greater than unrefunded amount",
                code="charge_already_refunded",
                param="amount",
            )
        refund = {
            "id": _new_id("re"),
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "metadata": params.get("metadata", {}),
            "reason": params.get("reason"),
            "status": "succeeded",
            "created": int(time.time()),
        }
        self.refunds[refund["id"]] = refund
        return _json(refund)

    # -- events ------------------------------------------------------------------------------------------------

    def _send(self, event_type: str, obj: dict[str, Any], key: str | None) -> None:
        shown = {k: v for k, v in obj.items() if k != "line_items_name"}
        event = {
            "id": _new_id("evt"),
            "object": "event",
            "api_version": stripe.api_version,
            "created": int(time.time()),
            "type": event_type,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": key},
            "data": {"object": json.loads(json.dumps(shown))},
        }
        self.events.append(event)
        if self.deliver:
            self._outbox.put(event)

    def signed(self, event: dict[str, Any], secret: str | None = None) -> tuple[str, str]:
        """An event's body and its `Stripe-Signature` header, signed by the stripe library as Stripe signs."""
        payload = json.dumps(event)
        return payload, stripe.WebhookSignature.generate_signature_header(payload, secret or self.webhook_secret)

    def _sender(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while (event := self._outbox.get()) is not None:
            self._sending.wait()
            payload, signature = self.signed(event)
            status, attempts = None, 0
            while attempts < 5 and self.webhook_url:
                attempts += 1
                request = urllib.request.Request(
                    self.webhook_url,
                    data=payload.encode(),
                    headers={"Content-Type": "application/json", "Stripe-Signature": signature},
                    method="POST",
                )
                try:
                    with opener.open(request, timeout=30) as answer:
                        status = answer.status
                except urllib.error.HTTPError as error:
                    status = error.code
                except OSError:
                    status = None
                if status is not None and 200 <= status < 300:
                    break
                time.sleep(0.2 * attempts)
            self.deliveries.append(Delivery(event["id"], event["type"], status, attempts))


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status, {"Request-Id": _new_id("req")}, mimetype="application/json")


def _error(status: int, kind: str, message: str, **fields: Any) -> Response:
    return _json({"error": {"type": kind, "message": message, **fields}}, status)


def _missing(kind: str, object_id: str) -> Response:
    return _error(404, "invalid_request_error", f"No such {kind}: '{object_id}'", code="resource_missing")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Checkout (Stripe stand-in)</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.6rem 1.2rem;margin:.3rem}}.total{{font-size:1.6rem}}</style></head>
<body><p>Stripe stand-in: test mode, no money moves.</p>
<h1>{name}</h1><p class="total" id="total">{amount} {currency}</p><p>Session {id}: <span id="status">{status}</span></p>
<form method="post" action="/checkout/{id}/pay" style="display:inline"><button id="pay" {disabled}>Pay</button></form>
<form method="post" action="/checkout/{id}/cancel" style="display:inline">
<button id="cancel" {disabled}>Cancel</button></form></body></html>
"""
