"""`prepaid`: the API from a shell. Tables with rich, or `--json` for scripts; errors on stderr with exit code 1.

prepaid [--url URL] [--region R] [--unsigned] [--json] COMMAND ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from prepaid_client.client import DEFAULT_URL, URL_ENV, PrepaidClient
from prepaid_client.errors import ApiError, PrepaidError
from prepaid_client.models import Card, LedgerEntry, Rejected, Wallet
from prepaid_client.usage_file import MAX_EVENTS_PER_REQUEST, UsageFileError, batches, read_events

FAILED = 1  # the API refused, or could not be reached; argparse's own usage errors exit 2
SHOWN_REJECTIONS = 20
PIPED_WIDTH = 200  # columns
Command = Callable[[PrepaidClient, argparse.Namespace, Console, Console], None]


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """The console script `prepaid`; returns the exit code (0, 1 on an error answer, 2 on bad arguments).
    `stdout`/`stderr`: where answers and errors (and the progress bar) go, the process's by default."""
    args = _parser().parse_args(argv)
    out, err = _console(stdout or sys.stdout), _console(stderr or sys.stderr)
    client = PrepaidClient(args.url, region=args.region, unsigned=args.unsigned or None)
    try:
        args.run(client, args, out, err)
    except ApiError as error:
        err.print(f"[red]error[/red] {error.status} {error.code}: {error.message}", markup=True, highlight=False)
        if error.details is not None:
            err.print(json.dumps(error.details, default=str), markup=False, highlight=False)
        return FAILED
    except (PrepaidError, UsageFileError, OSError) as error:
        err.print(f"error: {error}", markup=False, highlight=False)
        return FAILED
    return 0


# -- commands -----------------------------------------------------------------------------------------------------


def _wallets_list(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    wallets = list(islice(client.iter_wallets(page_size=args.page_size), args.max))
    if args.json:
        return _print_json(out, wallets)
    table = Table("customer", "balance", "overage", "live cards", "retired", "next expiry", title="Wallets")
    for wallet in wallets:
        table.add_row(
            wallet.customer_id,
            _num(wallet.balance),
            _num(wallet.overage),
            str(wallet.live_cards),
            str(wallet.retired_cards),
            _when(wallet.next_expiry),
        )
    out.print(table)
    return None


def _wallets_show(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    wallet = client.wallet(args.customer)
    if args.json:
        return _print_json(out, wallet)
    _print_wallet(out, wallet)
    return None


def _buy(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    purchase = client.buy(
        args.customer,
        args.credits,
        price=None if args.price is None else (args.price, args.currency),
        effective_at=args.effective_at,
        expires_at=args.expires_at,
        expires_in=args.expires_in,
        priority=args.priority,
        source=args.source,
        meters=args.meter or None,
        reference=args.reference,
        idempotency_key=args.idempotency_key,
    )
    if args.json:
        return _print_json(out, purchase)
    replayed = " (replayed: nothing bought again)" if purchase.replayed else ""
    out.print(f"card {purchase.card.card_id}: {_num(purchase.card.credits)} credits{replayed}", highlight=False)
    out.print(f"balance {_num(purchase.balance)}   idempotency key {purchase.idempotency_key}", highlight=False)
    out.print(_cards_table([purchase.card], "Card"))
    return None


def _void(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    void = client.void(
        args.customer,
        args.card,
        credits=args.credits,
        reason=args.reason,
        refund=True if args.refund else None,
        idempotency_key=args.idempotency_key,
    )
    if args.json:
        return _print_json(out, void)
    out.print(f"card {void.card.card_id} {void.card.status}; balance {_num(void.balance)}", highlight=False)
    if void.refund is not None:
        out.print(f"refund {_num(void.refund.amount)} {void.refund.currency}", highlight=False)
    return None


def _adjust(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    adjustment = client.adjust(
        args.customer,
        args.credits,
        args.reason,
        meter=args.meter,
        expires_at=args.expires_at,
        expires_in=args.expires_in,
        idempotency_key=args.idempotency_key,
    )
    if args.json:
        return _print_json(out, adjustment)
    entry = adjustment.adjustment
    out.print(f"adjusted {args.credits} ({entry.reason}); balance {_num(adjustment.balance)}", highlight=False)
    if adjustment.card is not None:
        out.print(_cards_table([adjustment.card], "Card added"))
    return None


def _settings_show(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    _print_json(out, client.settings(args.customer))


def _settings_set(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    settings: dict[str, Any] = dict(args.body or {})
    if args.threshold:
        settings["thresholds"] = args.threshold
    if args.webhook_url:
        settings["webhookUrl"] = args.webhook_url
    if args.overage_policy:
        settings["overagePolicy"] = args.overage_policy
    wallet = client.put_settings(args.customer, settings)
    _print_json(out, wallet.settings)


def _usage_send(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    events = read_events(Path(args.file))
    accepted, duplicates, rejected = 0, 0, list[Rejected]()
    columns = (TextColumn("usage"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=args.json) as progress:
        task = progress.add_task("send", total=len(events))
        offset = 0
        for batch in batches(events, args.batch_size):
            result = client.send_usage_raw(batch)
            accepted += len(result.accepted)
            duplicates += len(result.duplicates)
            # A rejection's index is the event's place in its request: shown as its place in the file.
            rejected.extend(item.model_copy(update={"index": item.index + offset}) for item in result.rejected)
            offset += len(batch)
            progress.advance(task, len(batch))
    if args.json:
        summary = {"events": len(events), "accepted": accepted, "duplicates": duplicates, "rejected": rejected}
        return _print_json(out, summary)
    out.print(
        f"{len(events)} events: {accepted} accepted, {duplicates} duplicates, {len(rejected)} rejected", highlight=False
    )
    if rejected:
        table = Table("index", "event id", "reason", "field", title="Rejected")
        for item in rejected[:SHOWN_REJECTIONS]:
            table.add_row(str(item.index), item.event_id or "", item.reason, item.field or "")
        out.print(table)
    return None


def _ledger(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    entries = list(
        islice(
            client.iter_ledger(args.customer, type=args.type, start=args.start, end=args.end, page_size=args.page_size),
            args.max,
        )
    )
    if args.json:
        return _print_json(out, entries)
    out.print(_ledger_table(entries, f"Ledger of {args.customer}"))
    return None


def _forecast(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    forecast = client.forecast(args.customer, horizon_days=args.horizon_days)
    if args.json:
        return _print_json(out, forecast)
    table = Table("", "", title=f"Forecast for {forecast.customer_id}, {forecast.horizon_days} days")
    table.add_row("balance", _num(forecast.balance))
    table.add_row("burn per day", str(forecast.burn_rate.get("creditsPerDay", "")))
    table.add_row("runway (days)", "" if forecast.runway_days is None else _num(forecast.runway_days))
    table.add_row("projected depletion", _when(forecast.projected_depletion_at))
    table.add_row("projected usage", _num(forecast.projected_usage))
    table.add_row("expiring unused", _num(forecast.credits_expiring_unused))
    recommended = forecast.recommended_purchase
    table.add_row("recommended purchase", "" if recommended is None else str(recommended.get("credits", "")))
    out.print(table)
    return None


def _revenue(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    revenue = client.revenue(args.start, args.end)
    if args.json:
        return _print_json(out, revenue)
    names = ("deferred at start", "purchased", "recognised", "breakage", "voided", "refunded", "rolled over")
    table = Table("currency", *names, "deferred", title=f"Revenue {revenue.start} to {revenue.end}")
    for line in revenue.currencies:
        amounts = (line.deferred_at_start, line.purchased, line.recognised, line.breakage, line.voided)
        table.add_row(line.currency, *map(_num, (*amounts, line.refunded, line.rolled_over, line.deferred)))
    out.print(table)
    return None


def _webhooks_add(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    created = client.create_webhook_endpoint(args.target, args.type, args.description or "")
    if args.json:
        return _print_json(out, created)
    out.print(f"endpoint {created.id}: {created.url} ({', '.join(created.event_types or ['every type'])})")
    out.print(f"secret (verify its deliveries with it; also `prepaid webhooks secret {created.id}`): {created.secret}")
    return None


def _webhooks_list(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    endpoints = client.webhook_endpoints()
    if args.json:
        return _print_json(out, endpoints)
    table = Table("id", "url", "event types", "disabled", "created", title="Webhook endpoints")
    for e in endpoints:
        table.add_row(e.id, e.url, ", ".join(e.event_types or ["every type"]), str(e.disabled), _when(e.created_at))
    out.print(table)
    return None


def _webhooks_secret(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    if args.wallet:
        secret = client.wallet_webhook_secret(args.endpoint)
    else:
        secret = client.webhook_endpoint_secret(args.endpoint)
    out.print(secret)


def _webhooks_deliveries(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    deliveries = list(islice(client.iter_deliveries(**_target(args), page_size=args.page_size), args.max))
    if args.json:
        return _print_json(out, deliveries)
    table = Table("event", "type", "customer", "happened", "state", "attempts", "last failure", title="Deliveries")
    for d in deliveries:
        table.add_row(
            d.event_id, d.event_type, d.customer_id, _when(d.event_time), d.state, str(d.attempts), d.last_failure or ""
        )
    out.print(table)
    return None


def _target(args: argparse.Namespace) -> dict[str, str]:
    """The endpoint a webhooks command names: an endpoint id, or with --wallet a customer's own webhook."""
    return {"customer_id": args.endpoint} if args.wallet else {"endpoint_id": args.endpoint}


def _webhooks_resend(client: PrepaidClient, args: argparse.Namespace, out: Console, err: Console) -> None:
    queued = client.resend(args.event, **_target(args))
    if args.json:
        return _print_json(out, queued)
    out.print(f"event {queued.event_id} queued again ({queued.state})")
    return None


# -- output -------------------------------------------------------------------------------------------------------


def _console(file: TextIO) -> Console:
    """A terminal gets tables as wide as it is; a pipe or a file gets them wide enough to keep ids whole."""
    return Console(file=file, soft_wrap=True, width=None if file.isatty() else PIPED_WIDTH)


def _print_json(out: Console, value: Any) -> None:
    """JSON with the contract's names; amounts as decimal strings. Written as is: no markup, no wrapping."""
    out.file.write(json.dumps(_plain(value), indent=2) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def _num(value: Decimal) -> str:
    return format(value, "f")


def _when(value: Any) -> str:
    return "" if value is None else value.isoformat().replace("+00:00", "Z")


def _print_wallet(out: Console, wallet: Wallet) -> None:
    summary = Table("", "", title=f"Wallet {wallet.customer_id} (version {wallet.version})")
    summary.add_row("balance", _num(wallet.balance))
    summary.add_row("available", _num(wallet.available))
    summary.add_row("overage", _num(wallet.overage))
    summary.add_row("next expiry", _when(wallet.next_expiry))
    for meter, available in wallet.available_by_meter.items():
        summary.add_row(f"available to {meter}", _num(available))
    out.print(summary)
    out.print(_cards_table(wallet.cards, "Cards in drawdown order"))


def _cards_table(cards: Iterable[Card], title: str) -> Table:
    table = Table("card", "credits", "remaining", "price", "source", "priority", "expires", "status", title=title)
    for card in cards:
        table.add_row(
            card.card_id,
            _num(card.credits),
            _num(card.remaining),
            f"{_num(card.price.amount)} {card.price.currency}",
            card.source,
            str(card.priority),
            _when(card.expires_at),
            card.status,
        )
    return table


def _ledger_table(entries: Iterable[LedgerEntry], title: str) -> Table:
    table = Table("at", "type", "credits", "balance after", "card / meter", "reason", title=title)
    for entry in entries:
        table.add_row(
            _when(entry.at),
            entry.type,
            _num(entry.credits),
            _num(entry.balance_after),
            entry.card_id or entry.meter or "",
            entry.reason or "",
        )
    return table


# -- arguments ----------------------------------------------------------------------------------------------------


def _load_json(text: str) -> dict[str, Any]:
    """Inline JSON, or @FILE; an object."""
    try:
        raw = Path(text[1:]).read_text(encoding="utf-8") if text.startswith("@") else text
        value = json.loads(raw, parse_float=Decimal)
    except (OSError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"--body: not JSON ({error})") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--body: a JSON object")
    return value


def _command(parent: Any, name: str, run: Command, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
    parser.set_defaults(run=run)
    return parser


def _page_options(parser: argparse.ArgumentParser, most: int) -> None:
    parser.add_argument("--page-size", type=int, help=f"items per request (the API's limit, 1-{most})")
    parser.add_argument("--max", type=int, help="stop after this many items (default: all)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prepaid", description="The prepaid-credits API from a shell.")
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"the API's base URL: the stack's ApiUrl, or make local's (default ${URL_ENV} or {DEFAULT_URL})",
    )
    parser.add_argument("--region", help="the region to sign for (default: the URL's, else AWS_REGION/profile)")
    parser.add_argument("--unsigned", action="store_true", help="send requests without SigV4 (make local)")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON instead of tables")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    wallets = commands.add_parser("wallets", help="list wallets, or show one").add_subparsers(
        dest="wallets", required=True
    )
    _page_options(_command(wallets, "list", _wallets_list, "every wallet, in customer id order"), 200)
    _command(wallets, "show", _wallets_show, "a wallet: balance, cards, settings").add_argument("customer")

    buy = _command(commands, "buy", _buy, "buy or grant credits (a new card)")
    buy.add_argument("customer")
    buy.add_argument("credits", help="a decimal string, e.g. 5000 or 12.5")
    buy.add_argument("--price", help="the amount paid (absent: priced by the price book; 0: a free grant)")
    buy.add_argument("--currency", default="USD", help="the price's currency (default USD)")
    buy.add_argument("--effective-at", help="ISO 8601 instant the card starts counting")
    expiry = buy.add_mutually_exclusive_group()
    expiry.add_argument("--expires-at", help="ISO 8601 instant")
    expiry.add_argument("--expires-in", help="ISO 8601 duration from effectiveAt, e.g. P365D")
    buy.add_argument("--priority", type=int, help="0-100, lower draws first (default 50)")
    buy.add_argument("--source", choices=("purchase", "promotion", "auto_recharge", "recurring"))
    buy.add_argument("--meter", action="append", help="only this meter's usage draws the card (repeatable)")
    buy.add_argument("--reference", help="your own id for it (an invoice, a contract line)")
    buy.add_argument("--idempotency-key", help="default: a new uuid4, printed; reuse it to retry safely")

    void = _command(commands, "void", _void, "void what remains of a card (or part of it)")
    void.add_argument("customer")
    void.add_argument("card")
    void.add_argument("--credits", help="only this many of the remaining credits")
    void.add_argument("--reason", help="a snake_case code kept on the ledger entry")
    void.add_argument("--refund", action="store_true", help="return their value through the card's Stripe payment")
    void.add_argument("--idempotency-key", help="default: a new uuid4")

    adjust = _command(commands, "adjust", _adjust, "add credits by hand (+n) or take them in card order (-n)")
    adjust.add_argument("customer")
    adjust.add_argument("credits", help='signed: "+500", "500" or "-120.5"')
    adjust.add_argument("--reason", required=True, help="free text, 1-500 characters")
    adjust.add_argument("--meter", help="taken: only from the cards that apply to this meter")
    adjusted_expiry = adjust.add_mutually_exclusive_group()
    adjusted_expiry.add_argument("--expires-at", help="added: ISO 8601 instant")
    adjusted_expiry.add_argument("--expires-in", help="added: ISO 8601 duration")
    adjust.add_argument("--idempotency-key", help="default: a new uuid4")

    settings = commands.add_parser("settings", help="show or replace a wallet's settings").add_subparsers(
        dest="settings", required=True
    )
    _command(settings, "show", _settings_show, "a wallet's settings as JSON").add_argument("customer")
    put = _command(settings, "set", _settings_set, "replace a wallet's settings (a setting left out is cleared)")
    put.add_argument("customer")
    put.add_argument(
        "--body", type=_load_json, help="the whole settings object: inline JSON or @FILE; the options below add to it"
    )
    put.add_argument("--threshold", action="append", help='credits ("500") or a percentage ("25%%"); repeatable')
    put.add_argument("--webhook-url", help="https URL alerts are sent to")
    put.add_argument("--overage-policy", choices=("allow", "block"))

    usage = commands.add_parser("usage", help="send usage events").add_subparsers(dest="usage", required=True)
    send = _command(usage, "send", _usage_send, "send a file of events: JSON lines or a JSON array")
    send.add_argument("file", help="events as POST /usage takes them: eventId, customerId, meter, quantity, ...")
    send.add_argument(
        "--batch-size",
        type=int,
        default=MAX_EVENTS_PER_REQUEST,
        help=f"events per request (1-{MAX_EVENTS_PER_REQUEST}, default {MAX_EVENTS_PER_REQUEST})",
    )

    ledger = _command(commands, "ledger", _ledger, "a wallet's ledger, newest first")
    ledger.add_argument("customer")
    ledger.add_argument("--type", help="purchase, usage, void, expiry, adjustment, ...")
    ledger.add_argument("--from", dest="start", help="ISO 8601 instant, inclusive")
    ledger.add_argument("--to", dest="end", help="ISO 8601 instant, exclusive")
    _page_options(ledger, 500)

    forecast = _command(commands, "forecast", _forecast, "burn rate, runway, credits expiring unused")
    forecast.add_argument("customer")
    forecast.add_argument("--horizon-days", type=int, help="1-366 (default 30)")

    webhooks = commands.add_parser("webhooks", help="webhook endpoints, secrets, deliveries").add_subparsers(
        dest="webhooks", required=True
    )
    add = _command(webhooks, "add", _webhooks_add, "add an endpoint; prints its secret")
    # (its own dest: `url` is the API's base URL, the global --url)
    add.add_argument("target", metavar="URL", help="https URL to a public host (make local: http://127.0.0.1:PORT/...)")
    add.add_argument(
        "--type", action="append", help='a detail type it gets, e.g. "Balance Low" (repeatable; default all)'
    )
    add.add_argument("--description")
    _command(webhooks, "list", _webhooks_list, "every endpoint")
    for name, run, help in (
        ("secret", _webhooks_secret, "an endpoint's secret (whsec_...)"),
        ("deliveries", _webhooks_deliveries, "an endpoint's deliveries, newest event first"),
        ("resend", _webhooks_resend, "send one event to the endpoint again"),
    ):
        command = _command(webhooks, name, run, help)
        command.add_argument("endpoint", help="an endpoint id (ep_...), or with --wallet a customer id")
        command.add_argument("--wallet", action="store_true", help="the wallet's own webhook (its webhookUrl)")
        if name == "resend":
            command.add_argument("event", help="the event id (webhook-id)")
        if name == "deliveries":
            _page_options(command, 100)

    revenue = _command(commands, "revenue", _revenue, "deferred, recognised, breakage ... per currency")
    revenue.add_argument("--from", dest="start", required=True, help="first UTC day, YYYY-MM-DD")
    revenue.add_argument("--to", dest="end", required=True, help="the day after the last, YYYY-MM-DD")
    return parser


if __name__ == "__main__":
    sys.exit(main())
