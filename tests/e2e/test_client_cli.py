"""The Python client (`client/`, package prepaid_client) and its `prepaid` CLI against `make local`'s server: the
CLI's main() is driven as a shell would (its --json output read back), the client's typed errors are raised from the
server's real 404, 409 and 422 answers."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from prepaid_client import Conflict, Invalid, NotFound, PrepaidClient
from prepaid_client.cli import main
from prepaid_local.server import LocalServer
from support.outside import call
from support.waiting import PATIENCE_SECONDS, eventually
from support.webhooks import Receiver, readme_verifier

# A meter of this module's own: the screening functions cache rate cards, and other modules rate api_calls otherwise.
METER = "cli_calls"
RATE_CARD = {"meters": {METER: {"creditsPerUnit": "0.5"}}}


@pytest.fixture(scope="module")
def local(server: LocalServer) -> Iterator[LocalServer]:
    """The server with a rate card (usage needs one); no price book: every purchase here names its price."""
    assert call(server, "PUT", "/rate-card", RATE_CARD)[0] == 200
    yield server


@pytest.fixture
def client(local: LocalServer) -> PrepaidClient:
    return PrepaidClient(local.url, unsigned=True)


def prepaid(server: LocalServer, *args: str) -> tuple[int, str, str]:
    """`prepaid --url <server> --unsigned ARGS...` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()  # not capsys: the in-process server's functions log to stdout
    code = main(["--url", server.url, "--unsigned", *args], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def prepaid_json(server: LocalServer, *args: str) -> Any:
    code, out, err = prepaid(server, "--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_a_purchase_from_the_cli_is_idempotent_by_default(local: LocalServer) -> None:
    # Given a new customer
    customer = f"cli-buy-{uuid.uuid4().hex[:8]}"
    # When credits are bought from the CLI, without naming an idempotency key
    bought = prepaid_json(local, "buy", customer, "5000", "--price", "50", "--expires-in", "P365D")
    # Then the card is made, and the key the client generated comes back with it
    assert (bought["card"]["credits"], bought["balance"], bought["replayed"]) == ("5000", "5000", False)
    key = bought["idempotencyKey"]
    assert uuid.UUID(key).version == 4
    # When the same purchase is sent again with that key (a retry after a timeout)
    again = prepaid_json(local, "buy", customer, "5000", "--price", "50", "--expires-in", "P365D",
                         "--idempotency-key", key)  # fmt: skip
    # Then it is the first answer replayed: the same card, nothing bought twice
    assert (again["card"]["cardId"], again["replayed"]) == (bought["card"]["cardId"], True)
    assert prepaid_json(local, "wallets", "show", customer)["balance"] == "5000"
    # And the table output names the card and the balance
    code, out, _ = prepaid(local, "wallets", "show", customer)
    assert code == 0 and bought["card"]["cardId"] in out and "5000" in out


def test_usage_from_a_file_is_sent_in_batches_and_drawn(local: LocalServer, tmp_path: Path) -> None:
    # Given a funded wallet and a JSON-lines file of five events plus one for a meter the rate card lacks
    customer = f"cli-usage-{uuid.uuid4().hex[:8]}"
    prepaid_json(local, "buy", customer, "1000", "--price", "10")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    events = [
        {"eventId": f"{customer}-{n}", "customerId": customer, "meter": METER, "quantity": "10", "timestamp": now}
        for n in range(5)
    ]
    unknown = {**events[0], "eventId": f"{customer}-x", "meter": "no_such_meter"}
    lines = [json.dumps(event) for event in [*events[:3], unknown, *events[3:]]]
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(lines) + "\n")
    # When the file is sent two events a request
    sent = prepaid_json(local, "usage", "send", str(path), "--batch-size", "2")
    # Then every event is counted once, the refused one by its place in the file
    assert (sent["events"], sent["accepted"], sent["duplicates"]) == (6, 5, 0)
    assert [(r["index"], r["reason"]) for r in sent["rejected"]] == [(3, "unknown_meter")]

    # And the wallet is drawn 5 x 10 x 0.5 credits
    def drawn() -> bool:
        """the five events drawn"""
        return bool(prepaid_json(local, "wallets", "show", customer)["balance"] == "975")

    eventually(drawn)
    # When the same file is sent again, as a JSON array this time, with the table output
    path.write_text("[\n" + ",\n".join(lines) + "\n]")
    code, out, _ = prepaid(local, "usage", "send", str(path))
    # Then nothing is drawn twice
    assert code == 0
    assert "6 events: 0 accepted, 5 duplicates, 1 rejected" in out
    assert prepaid_json(local, "wallets", "show", customer)["balance"] == "975"


def test_the_ledger_follows_next_cursor_across_pages(local: LocalServer, client: PrepaidClient) -> None:
    # Given a wallet with five purchases: five ledger entries
    customer = f"cli-ledger-{uuid.uuid4().hex[:8]}"
    for credits in ("1", "2", "3", "4", "5"):
        client.buy(customer, credits, price=("0", "USD"))
    whole = client.ledger_page(customer, limit=500)
    assert whole.next_cursor is None and len(whole.entries) == 5
    first = client.ledger_page(customer, limit=2)
    assert first.next_cursor is not None and len(first.entries) == 2
    # When the CLI lists the ledger two entries a request
    entries = prepaid_json(local, "ledger", customer, "--page-size", "2")
    # Then it walked every page: all five entries, newest first, as the single page has them
    assert [e["entryId"] for e in entries] == [e.entry_id for e in whole.entries]
    assert [e["credits"] for e in entries] == ["5", "4", "3", "2", "1"]
    # And the client's iterator does the same, with exact decimals
    assert [e.credits for e in client.iter_ledger(customer, page_size=2)] == [Decimal(n) for n in "54321"]
    assert [e["entryId"] for e in prepaid_json(local, "ledger", customer, "--page-size", "2", "--max", "3")] == [
        e.entry_id for e in whole.entries[:3]
    ]


def test_an_unknown_wallet_is_a_typed_not_found(local: LocalServer, client: PrepaidClient) -> None:
    # Given no wallet "cli-nobody"; When it is read
    with pytest.raises(NotFound) as raised:
        client.wallet("cli-nobody")
    # Then the 404 is parsed into the contract's code and message
    assert (raised.value.status, raised.value.code) == (404, "wallet_not_found")
    assert raised.value.message
    # And the CLI says so on stderr with exit code 1
    code, out, err = prepaid(local, "wallets", "show", "cli-nobody")
    assert (code, out) == (1, "")
    assert "404 wallet_not_found" in err


def test_an_idempotency_key_reused_for_another_purchase_is_a_typed_conflict(
    local: LocalServer, client: PrepaidClient
) -> None:
    # Given a purchase made with a key of the caller's
    customer = f"cli-conflict-{uuid.uuid4().hex[:8]}"
    first = client.buy(customer, "10", price=("1", "USD"), idempotency_key="order-1")
    assert (first.idempotency_key, first.replayed) == ("order-1", False)
    # When the same key comes with another request
    with pytest.raises(Conflict) as raised:
        client.buy(customer, "20", price=("2", "USD"), idempotency_key="order-1")
    # Then it is a 409 idempotency_key_reused, and nothing was bought
    assert (raised.value.status, raised.value.code) == (409, "idempotency_key_reused")
    assert client.wallet(customer).balance == Decimal(10)
    code, _, err = prepaid(local, "buy", customer, "30", "--price", "3", "--idempotency-key", "order-1")
    assert code == 1 and "409 idempotency_key_reused" in err


def test_a_bad_body_is_a_typed_invalid_naming_the_field(local: LocalServer, client: PrepaidClient) -> None:
    # Given a customer; When a purchase asks a priority out of 0-100
    customer = f"cli-invalid-{uuid.uuid4().hex[:8]}"
    with pytest.raises(Invalid) as raised:
        client.buy(customer, "10", price=("1", "USD"), priority=101)
    # Then it is a 422 whose details name the field
    assert (raised.value.status, raised.value.code) == (422, "validation_error")
    assert "priority" in json.dumps(raised.value.details)
    # And with too many fractional digits, from the CLI: a 422 on stderr, exit code 1
    code, _, err = prepaid(local, "buy", customer, "1.0000000001", "--price", "1")
    assert code == 1 and "422" in err
    assert call(local, "GET", f"/wallets/{customer}")[0] == 404


def test_the_console_script_runs_signed_with_the_environment_credentials(local: LocalServer, tmp_path: Path) -> None:
    # Given the installed `prepaid` script and credentials in the environment (make local serves signed requests too)
    script = Path(sys.executable).with_name("prepaid")
    assert script.exists(), "client/ is installed into the venv by requirements-dev.txt (-e ./client)"
    customer = f"cli-script-{uuid.uuid4().hex[:8]}"
    env = {"PATH": "/usr/bin:/bin", "PREPAID_URL": local.url, "AWS_ACCESS_KEY_ID": "AKIDLOCAL",
           "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": "us-east-1", "HOME": str(tmp_path)}  # fmt: skip
    # When it buys credits in a process of its own, the URL taken from PREPAID_URL
    done = subprocess.run(
        [str(script), "--json", "buy", customer, "7", "--price", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=PATIENCE_SECONDS,
        check=False,
    )
    # Then the purchase is made
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["balance"] == "7"
    assert call(local, "GET", f"/wallets/{customer}")[1]["balance"] == "7"


def test_a_webhook_endpoint_from_the_cli_gets_deliveries_that_verify_and_resends(local: LocalServer) -> None:
    # Given a receiver, and an endpoint for purchases added from the CLI (its secret printed once)
    receiver = Receiver().start()
    added = prepaid_json(local, "webhooks", "add", receiver.url, "--type", "Credits Purchased")
    endpoint = added["id"]
    try:
        assert prepaid(local, "webhooks", "secret", endpoint)[1].strip() == added["secret"]
        # When a customer buys credits
        customer = f"cli-hook-{uuid.uuid4().hex[:8]}"
        prepaid_json(local, "buy", customer, "100", "--price", "1")
        # Then the receiver gets the purchase, and the README's check verifies it with that secret
        (request,) = eventually(lambda: [r for r in receiver.received if r.json()["customerId"] == customer] or None)
        assert readme_verifier()(added["secret"], request.body, request.headers)["type"] == "Credits Purchased"

        # And the CLI lists the delivery as delivered (the listing is eventually consistent, like its index)
        # (the server is shared: other tests' purchases may reach the endpoint too)
        def listed() -> list[tuple[str, str]] | None:
            deliveries = prepaid_json(local, "webhooks", "deliveries", endpoint)
            return [(d["eventId"], d["state"]) for d in deliveries if d["customerId"] == customer] or None

        assert eventually(listed) == [(request.event_id, "delivered")]
        # When it is resent from the CLI
        assert prepaid_json(local, "webhooks", "resend", endpoint, request.event_id)["state"] == "queued"
        # Then the receiver gets the same event again
        eventually(lambda: [r.event_id for r in receiver.received].count(request.event_id) == 2 or None)
        # And an unknown endpoint is a typed not-found
        with pytest.raises(NotFound):
            PrepaidClient(local.url, unsigned=True).webhook_endpoint_secret("ep_" + "0" * 32)
    finally:
        receiver.stop()
        PrepaidClient(local.url, unsigned=True).delete_webhook_endpoint(endpoint)
