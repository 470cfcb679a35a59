"""Calendar durations through the stack: `expiresIn` `P1M` on a purchase ends on the same day next month (the last
day of a shorter month), and calendar durations in settings are stored and shown as given."""

from __future__ import annotations

import pytest

from prepaid_local.stack import Stack

PRICE = {"amount": "1.00", "currency": "USD"}


@pytest.mark.parametrize(
    ("effective_at", "expires_in", "expires_at"),
    [
        ("2099-01-31T10:00:00Z", "P1M", "2099-02-28T10:00:00Z"),
        ("2096-01-31T10:00:00Z", "P1M", "2096-02-29T10:00:00Z"),  # a leap year
        ("2099-03-15T00:00:00Z", "P1M", "2099-04-15T00:00:00Z"),
        ("2096-02-29T00:00:00Z", "P1Y", "2097-02-28T00:00:00Z"),
        ("2099-01-31T00:00:00Z", "P1M1DT12H", "2099-03-01T12:00:00Z"),
        ("2099-01-31T00:00:00Z", "P30D", "2099-03-02T00:00:00Z"),  # days stay exact
    ],
)
def test_a_purchase_expiring_in_calendar_months_ends_on_the_same_day_of_its_month(
    stack: Stack, effective_at: str, expires_in: str, expires_at: str
) -> None:
    # When a card is bought from an effective instant with a calendar expiresIn
    body = {"credits": "10", "price": PRICE, "effectiveAt": effective_at, "expiresIn": expires_in}
    answer = stack.api("POST", "/wallets/acme/purchases", body)
    # Then it expires on the same day of the later month (its last day when shorter), not 30 days on
    assert answer.status == 201, answer.body
    assert answer.body["card"]["expiresAt"] == expires_at


def test_calendar_durations_in_settings_are_kept_and_shown_as_given(stack: Stack) -> None:
    # Given a monthly grant expiring in a month, rolling over into a card of a year and a half
    recurring = {"credits": "100", "dayOfMonth": 1, "expiresIn": "P1M", "rollover": {"expiresIn": "P1Y6M"}}
    assert stack.api("PUT", "/wallets/acme/settings", {"recurring": recurring}).status == 200
    # When the wallet is read back (from its stored item)
    shown = stack.api("GET", "/wallets/acme").body["settings"]["recurring"]
    # Then the durations are the calendar ones given
    assert (shown["expiresIn"], shown["rollover"]["expiresIn"]) == ("P1M", "P1Y6M")


@pytest.mark.parametrize("expires_in", ["P0.5M", "P101Y", "-P1M", "P1200M1D", "1 month"])
def test_a_fractional_negative_or_too_long_calendar_duration_is_a_422(stack: Stack, expires_in: str) -> None:
    answer = stack.api("POST", "/wallets/acme/purchases", {"credits": "1", "price": PRICE, "expiresIn": expires_in})
    assert (answer.status, answer.body["error"]["code"]) == (422, "validation_error")
    assert answer.body["error"]["details"][0]["field"] == "body.expiresIn"
