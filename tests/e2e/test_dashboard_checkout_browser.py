"""A customer buys credits on the dashboard in headless Chromium, clicking as a person would, against `make local`
and its Stripe stand-in: the recommended purchase, paid on the stand-in's page, pending until Stripe's event arrives,
then active; a checkout cancelled on the page grants nothing. Screenshots at 1280 and 390 px, with no horizontal
overflow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from prepaid_local.server import LocalServer
from support.browser import Browser
from support.outside import call, local_server
from support.waiting import eventually

CUSTOMER = "shop-demo"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with local_server(seed=True) as running:  # the demo price book and rate card, as `make local ARGS=--seed`
        yield running


@pytest.fixture(scope="module")
def link(server: LocalServer) -> str:
    """A customer with a small card and ten days of steady usage (so a purchase is recommended); its link."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    status, answer = call(server, "POST", f"/wallets/{CUSTOMER}/purchases", {"credits": "1000"})
    assert status == 201, answer
    events = [
        {
            "eventId": f"shop-{ago}",
            "customerId": CUSTOMER,
            "meter": "api_calls",
            "quantity": "100",
            "timestamp": (midnight - timedelta(days=ago, hours=-12)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for ago in range(1, 11)
    ]
    status, answer = call(server, "POST", "/usage", {"events": events})
    assert (status, answer["rejected"]) == (202, []), answer

    def drawn() -> bool:
        """the usage was drawn"""
        return bool(call(server, "GET", f"/wallets/{CUSTOMER}")[1]["totals"]["rated"] != "0")

    eventually(drawn)
    status, created = call(server, "POST", f"/wallets/{CUSTOMER}/dashboard-links", {"ttlSeconds": 3600})
    assert status == 201, created
    return str(created["url"])


@pytest.fixture
def browser(chromium: str) -> Iterator[Browser]:
    opened = Browser(chromium)
    yield opened
    opened.close()


def wallet(server: LocalServer) -> dict[str, Any]:
    status, answer = call(server, "GET", f"/wallets/{CUSTOMER}")
    assert status == 200, answer
    return dict(answer)


READY = "document.body.getAttribute('data-state') === 'ready'"


def test_a_customer_buys_the_recommended_purchase_and_sees_it_pending_then_active(
    server: LocalServer, link: str, browser: Browser
) -> None:
    # Given the dashboard open on the customer's link, recommending a purchase priced by the book
    before = wallet(server)
    browser.open(link)
    browser.wait_for(READY)
    credits = browser.value("document.getElementById('recommendation').getAttribute('data-credits')")
    assert Decimal(credits) > 0
    status, quote = call(server, "GET", f"/quotes?credits={credits}")
    assert status == 200, quote
    browser.wait_for("document.getElementById('buy-quote').getAttribute('data-amount')")
    assert browser.value("document.getElementById('buy-quote').getAttribute('data-amount')") == quote["price"]["amount"]
    # When the customer buys it, and pays on the checkout page (Stripe's confirmation held back for a moment)
    server.stripe.hold_events()
    browser.click("#buy-recommended")
    browser.wait_for("location.pathname.startsWith('/checkout/')")
    total = browser.wait_for("document.getElementById('total') && document.getElementById('total').textContent")
    assert total == f"{quote['price']['amount']} {quote['price']['currency']}"
    browser.click("#pay")
    # Then the dashboard shows the card pending, outside the balance
    browser.wait_for("location.pathname === '/dashboard' && " + READY)
    browser.wait_for("!!document.querySelector('tr[data-status=pending]')")
    assert browser.value("document.getElementById('checkout-notice').getAttribute('data-outcome')") == "success"
    assert browser.value("document.getElementById('balance').getAttribute('data-value')") == before["balance"]
    # And when Stripe's events arrive, the card is active and the balance holds it once, at the quoted price
    server.stripe.release_events()
    browser.wait_for("document.body.getAttribute('data-pending') === 'no'")
    after = wallet(server)
    known = {c["cardId"] for c in before["cards"]}
    bought = [c for c in after["cards"] if c["cardId"] not in known]
    assert len(bought) == 1
    assert (bought[0]["status"], bought[0]["credits"], bought[0]["price"]) == ("active", credits, quote["price"])
    assert Decimal(after["balance"]) == Decimal(before["balance"]) + Decimal(credits)
    shown = browser.value("document.getElementById('balance').getAttribute('data-value')")
    assert shown == after["balance"]


def test_a_checkout_cancelled_on_the_page_grants_nothing(server: LocalServer, link: str, browser: Browser) -> None:
    # Given the dashboard open, and 1,000 credits typed into "Buy credits"
    before = wallet(server)
    browser.open(link)
    browser.wait_for(READY)
    browser.value(
        "(e => { e.value = '1000'; e.dispatchEvent(new Event('input')); })(document.getElementById('buy-credits'))"
    )
    browser.wait_for("document.getElementById('buy-quote').getAttribute('data-amount') === '10.00'")
    # When the customer goes to the checkout page and cancels there
    browser.click("#buy")
    browser.wait_for("location.pathname.startsWith('/checkout/')")
    browser.click("#cancel")
    # Then the dashboard says nothing was charged, and once Stripe's event arrives the card is voided
    browser.wait_for("location.pathname === '/dashboard' && " + READY)
    assert browser.value("document.getElementById('checkout-notice').getAttribute('data-outcome')") == "cancel"

    def voided() -> bool:
        """the checkout's card was voided"""
        return Decimal(wallet(server)["totals"]["voided"]) == Decimal(before["totals"]["voided"]) + 1000

    eventually(voided)
    after = wallet(server)
    assert after["balance"] == before["balance"]
    assert [c["cardId"] for c in after["cards"]] == [c["cardId"] for c in before["cards"]]


@pytest.mark.parametrize("width", [1280, 390])
def test_the_dashboard_fits_the_screen_at_each_width(
    server: LocalServer, link: str, browser: Browser, width: int, tmp_path: Path
) -> None:
    # When the dashboard is shown at the width of a laptop and of a phone
    browser.resize(width, 1400)
    browser.open(link)
    browser.wait_for(READY)
    # Then nothing sticks out sideways: the page is no wider than the window
    assert browser.value("document.documentElement.scrollWidth <= window.innerWidth"), browser.value(
        "[document.documentElement.scrollWidth, window.innerWidth]"
    )
    # And the screenshot is the page, rendered at that width
    shot = tmp_path / f"dashboard-{width}.png"
    browser.screenshot(shot)
    with Image.open(shot) as image:
        assert image.size == (width, 1400)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 100, "the page looks blank"
