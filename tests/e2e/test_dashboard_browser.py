"""The customer dashboard in a real browser: Debian's Chromium, headless, against `make local` on free ports.

Chromium runs with every host but 127.0.0.1 unresolvable and a dead proxy for anything else, so a page that
needed a CDN, a web font or any other network access would not render. Chromium must be installed (`make browser`,
which `make test` runs): a missing browser fails these tests, it does not skip them.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from prepaid_demo.catalog import DEMO_RATE_CARD
from prepaid_local.server import LocalServer
from support.browser import CHROMIUM_FLAGS, Browser
from support.outside import call, local_server
from support.waiting import eventually

CUSTOMER = "dash-demo"
OTHER = "dash-other"
BROWSER_TIMEOUT = 180  # seconds: generous, Chromium on a loaded two-core machine is slow to start, not wrong


def z(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def rate(meter: str) -> Decimal:
    return Decimal(DEMO_RATE_CARD["meters"][meter]["creditsPerUnit"])


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with local_server(seed=True) as running:  # the demo price book and rate card, as `make local ARGS=--seed`
        yield running


@pytest.fixture(scope="module")
def demo(server: LocalServer) -> dict[str, Any]:
    """A customer with a paid card (a month old, 60 days left) and 10 days of usage on two meters (60 credits a
    day), then a free promotion expiring in 2 days; another customer with usage of its own. Returns the wallet."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    paid = {
        "credits": "1000",
        "effectiveAt": z(midnight - timedelta(days=30)),
        "expiresAt": z(now + timedelta(days=60)),
    }
    for customer in (CUSTOMER, OTHER):
        status, answer = call(server, "POST", f"/wallets/{customer}/purchases", paid)
        assert status == 201, answer
    events = []
    for ago in range(1, 11):
        at = z(midnight - timedelta(days=ago) + timedelta(hours=12))
        for event_id, customer, meter, quantity in (
            (f"c{ago}", CUSTOMER, "api_calls", "100"),
            (f"t{ago}", CUSTOMER, "tokens", "5000"),
            (f"o{ago}", OTHER, "api_calls", "7"),
        ):
            events.append(
                {"eventId": event_id, "customerId": customer, "meter": meter, "quantity": quantity, "timestamp": at}
            )
    status, answer = call(server, "POST", "/usage", {"events": events})
    assert (status, answer["rejected"]) == (202, []), answer
    expected = {CUSTOMER: 10 * (100 * rate("api_calls") + 5000 * rate("tokens")), OTHER: 10 * 7 * rate("api_calls")}

    def drawn() -> bool:
        """the usage was drawn"""
        return {c: Decimal(call(server, "GET", f"/wallets/{c}")[1]["totals"]["rated"]) for c in expected} == expected

    eventually(drawn)
    # a promotion whose credits the burn rate cannot use up before they expire
    promotion = {
        "credits": "300",
        "price": {"amount": "0", "currency": "USD"},
        "source": "promotion",
        "expiresIn": "P2D",
    }
    status, answer = call(server, "POST", f"/wallets/{CUSTOMER}/purchases", promotion)
    assert status == 201, answer
    wallet: dict[str, Any] = call(server, "GET", f"/wallets/{CUSTOMER}")[1]
    return wallet


@pytest.fixture(scope="module")
def dashboard_link(server: LocalServer, demo: dict[str, Any]) -> dict[str, Any]:
    status, created = call(server, "POST", f"/wallets/{CUSTOMER}/dashboard-links", {"ttlSeconds": 600})
    assert status == 201, created
    assert created["url"].startswith(f"{server.url}/dashboard#token=")
    return dict(created)


def browse(chromium: str, url: str, *action: str) -> str:
    """Chromium headless on one URL, with nothing reachable but 127.0.0.1; returns its standard output."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            *action,
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


class Element:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.text = ""
        self.children: list[Element] = []

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def walk(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            yield from child.walk()


class Dom(HTMLParser):
    """The dumped DOM as a tree of elements with their attributes and text (enough for assertions)."""

    VOID = {"meta", "link", "br", "img", "input", "hr", "source", "area", "base", "col", "embed", "wbr"}

    def __init__(self, html: str) -> None:
        super().__init__()
        self.root = Element("#document", {})
        self._open = [self.root]
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self._open[-1].children.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open[1:]:
            element.text += data

    def all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.root.walk()
            if (tag is None or e.tag == tag) and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def by_id(self, element_id: str) -> Element:
        (found,) = self.all(id=element_id)
        return found


def test_the_dashboard_renders_the_wallet_in_chromium(
    chromium: str, server: LocalServer, demo: dict[str, Any], dashboard_link: dict[str, Any]
) -> None:
    # Given the link the SaaS backend got, and what the page's own data route answers for it
    seen: list[str] = []
    server.stack.observers.append(
        lambda function, event: seen.append(f"{function} {event['path']}") if "httpMethod" in event else None
    )
    try:
        # When Chromium opens the link, with no network beyond 127.0.0.1
        dom = Dom(browse(chromium, dashboard_link["url"], "--dump-dom"))
    finally:
        server.stack.observers.clear()

    # Then the page rendered its data (not an error) and requested nothing but itself and its data route
    assert dom.all("body")[0].attrs.get("data-state") == "ready", dom.by_id("error").text
    assert sorted(seen) == [
        "DashboardFunction /dashboard",
        "DashboardFunction /dashboard/cards",
        "DashboardFunction /dashboard/data",
        "DashboardFunction /dashboard/quote",
    ]
    wallet = call(server, "GET", f"/wallets/{CUSTOMER}")[1]
    forecast = call(server, "GET", f"/wallets/{CUSTOMER}/forecast", None)[1]
    assert dom.by_id("customer").text == CUSTOMER

    # And the big balance is the API's, digit for digit
    balance = dom.by_id("balance")
    assert balance.attrs["data-value"] == wallet["balance"] == "700"
    assert balance.text.replace(",", "") == wallet["balance"]
    assert "hidden" in dom.by_id("meters").attrs  # no card is scoped to some meters: no per-meter figures

    # And there is one row per live card, with its expiry and status
    rows = [e for e in dom.by_id("cards").walk() if e.tag == "tr"][1:]
    assert [r.attrs["data-card-id"] for r in rows] == [c["cardId"] for c in wallet["cards"]]
    for row, card in zip(rows, wallet["cards"], strict=True):
        (expires,) = [e for e in row.walk() if "expires" in e.classes()]
        assert expires.attrs["data-expires-at"] == card["expiresAt"]
        assert row.attrs["data-status"] == card["status"] == "active"
        assert any(e.tag == "span" and card["status"] in e.classes() for e in row.walk())

    # And the usage chart is an SVG with one line per meter
    usage = dom.by_id("usage-chart")
    assert usage.tag == "svg"
    lines = [e for e in usage.walk() if e.tag == "path" and "series" in e.classes()]
    assert sorted(e.attrs["data-meter"] for e in lines) == ["api_calls", "tokens"]
    assert all(e.attrs["d"].startswith("M") and e.attrs["d"].count("L") == 29 for e in lines)  # 30 days
    legend = {e.attrs["data-meter"]: e.attrs["data-credits"] for e in dom.all("li") if "data-meter" in e.attrs}
    assert legend == {"api_calls": "500", "tokens": "100"}

    # And the forecast line is drawn, the depletion date marked on it, and the expiring credits shown
    line = dom.by_id("forecast-line")
    assert line.tag == "path"
    assert int(line.attrs["data-points"]) == len(forecast["days"]) + 1
    assert forecast["projectedDepletionAt"] is not None
    assert dom.by_id("depletion").attrs["data-at"][:13] == forecast["projectedDepletionAt"][:13]
    assert dom.by_id("depletion-marker").tag == "line"
    assert Decimal(dom.by_id("expiring-unused").attrs["data-value"]) > 0
    assert len(dom.by_id("expiring-list").children) == 1

    # And the recommended purchase is shown with its price from the price book
    recommended = forecast["recommendedPurchase"]
    shown = dom.by_id("recommendation").attrs["data-credits"]
    assert abs(int(shown) - int(recommended["credits"])) <= 1  # the page read its forecast a moment earlier
    assert "USD" in dom.by_id("recommended-price").text

    # And "All cards" lists every card of the wallet, as the card listing does, with nothing more to load
    listed = call(server, "GET", f"/wallets/{CUSTOMER}/cards")[1]
    every = [e for e in dom.by_id("all-cards").walk() if e.tag == "tr"][1:]
    assert [(r.attrs["data-card-id"], r.attrs["data-status"]) for r in every] == [
        (c["cardId"], c["status"]) for c in listed["cards"]
    ]
    assert "hidden" in dom.by_id("all-cards-more").attrs

    # And nothing of the other customer is on the page
    text = "".join(e.text for e in dom.all("body")) + str([e.attrs for e in dom.root.walk()])
    assert OTHER not in text


def test_the_dashboard_shows_what_each_meter_may_use_when_cards_are_scoped(chromium: str, server: LocalServer) -> None:
    # Given a wallet with 100 credits for tokens only and 50 for any meter
    for body in (
        {"credits": "100", "price": {"amount": "1.00", "currency": "USD"}, "appliesTo": {"meters": ["tokens"]}},
        {"credits": "50", "price": {"amount": "1.00", "currency": "USD"}},
    ):
        status, answer = call(server, "POST", "/wallets/scoped-browser/purchases", body)
        assert status == 201, answer
    status, link = call(server, "POST", "/wallets/scoped-browser/dashboard-links", {"ttlSeconds": 600})
    assert status == 201, link
    # When Chromium opens its dashboard
    dom = Dom(browse(chromium, link["url"], "--dump-dom"))
    # Then the page shows what tokens may use (both cards) and what any other meter may (the unscoped card)
    assert dom.all("body")[0].attrs.get("data-state") == "ready", dom.by_id("error").text
    meters = {e.attrs["data-meter"]: e for e in dom.by_id("meters").walk() if "data-meter" in e.attrs}
    values = {m: [c.attrs["data-value"] for c in e.walk() if "data-value" in c.attrs] for m, e in meters.items()}
    assert values == {"tokens": ["150"], "*": ["50"]}
    assert "hidden" not in dom.by_id("meters").attrs
    # And the scoped card's row names its meter
    rows = [e for e in dom.by_id("cards").walk() if e.tag == "tr"][1:]
    assert sorted("tokens" in "".join(c.text for c in r.walk()) for r in rows) == [False, True]


def test_the_dashboard_screenshot_is_a_rendered_page(
    chromium: str, dashboard_link: dict[str, Any], tmp_path: Path
) -> None:
    # When Chromium takes a screenshot of the page
    shot = tmp_path / "dashboard.png"
    browse(chromium, dashboard_link["url"], f"--screenshot={shot}", "--window-size=1280,1600", "--hide-scrollbars")
    # Then it is a PNG of the window's size, and not a blank one: text, charts and colours are on it
    assert shot.is_file()
    with Image.open(shot) as image:
        assert image.format == "PNG"
        assert image.size == (1280, 1600)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None
    assert len(colours) > 200, f"only {len(colours)} colours: the page looks blank"
    # the most common colour (the background) covers less than nine tenths of it
    assert max(count for count, _ in colours) < 0.9 * 1280 * 1600


def test_an_altered_link_shows_the_403_page_in_chromium(
    chromium: str, server: LocalServer, dashboard_link: dict[str, Any]
) -> None:
    # Given the link with one character of the token's signed body changed
    token = dashboard_link["token"]
    body, _, mac = token.partition(".")
    swapped = "B" if body[5] != "B" else "C"
    url = f"{server.url}/dashboard#token={body[:5]}{swapped}{body[6:]}.{mac}"
    # When Chromium opens it
    dom = Dom(browse(chromium, url, "--dump-dom"))
    # Then it shows the refusal, with its code, and none of the wallet
    error = dom.by_id("error")
    assert (error.attrs["data-status"], error.attrs["data-code"]) == ("403", "invalid_token")
    assert "403 invalid_token" in error.text
    assert [b.text for b in dom.all(id="balance")] == [""]


MANY = "dash-many"
ROWS = "document.getElementById('all-cards').getAttribute('data-rows')"


@pytest.fixture(scope="module")
def many_cards_link(server: LocalServer) -> str:
    """A customer with 25 cards, bought one after the other, the two oldest voided; its link."""
    bought = []
    for n in range(25):
        status, answer = call(server, "POST", f"/wallets/{MANY}/purchases", {"credits": str(n + 1)})
        assert status == 201, answer
        bought.append(answer["card"]["cardId"])
    for card_id in bought[:2]:
        status, answer = call(server, "POST", f"/wallets/{MANY}/cards/{card_id}/void")
        assert status == 200, answer
    status, created = call(server, "POST", f"/wallets/{MANY}/dashboard-links", {"ttlSeconds": 3600})
    assert status == 201, created
    return str(created["url"])


@pytest.mark.parametrize("width", [1280, 390])
def test_all_cards_come_a_page_at_a_time_and_fit_the_screen(
    chromium: str, server: LocalServer, many_cards_link: str, width: int
) -> None:
    listed = [c for page in _every_card_page(server, MANY) for c in page]
    browser = Browser(chromium, width, 1400)
    try:
        # Given the dashboard of a wallet with more cards than a page shows
        browser.open(many_cards_link)
        browser.wait_for(f"document.body.getAttribute('data-state') === 'ready' && {ROWS} === '20'")
        # Then the newest 20 are shown, and "More cards" offered
        assert browser.value("!document.getElementById('all-cards-more').hidden")
        # When the customer asks for more
        browser.click("#all-cards-more")
        browser.wait_for(f"{ROWS} === '25'")
        # Then every card is listed once, newest first, the voided ones last, and nothing more is offered
        shown = browser.value(
            "Array.from(document.querySelectorAll('#all-cards tbody tr'))"
            ".map(r => [r.getAttribute('data-card-id'), r.getAttribute('data-status')])"
        )
        assert shown == [[c["cardId"], c["status"]] for c in listed]
        assert [status for _, status in shown[-2:]] == ["voided", "voided"]
        assert browser.value("document.getElementById('all-cards-more').hidden")
        # And nothing sticks out sideways: the page is no wider than the window
        assert browser.value("document.documentElement.scrollWidth <= window.innerWidth"), browser.value(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
    finally:
        browser.close()


def _every_card_page(server: LocalServer, customer: str) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        status, answer = call(server, "GET", f"/wallets/{customer}/cards" + (f"?cursor={cursor}" if cursor else ""))
        assert status == 200, answer
        pages.append(answer["cards"])
        cursor = answer["nextCursor"]
        if cursor is None:
            return pages
