"""Hourly usage: the wallet's open hour plus the stored hours always add up to every event drawn, once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from prepaid.domain.rate_card import PricedBy
from prepaid.domain.usage_hours import HourUsage, MeterUsage, by_hour, merged_hours, tally

START = datetime(2026, 11, 24, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Used:
    meter: str
    quantity: Decimal
    credits: Decimal
    at: datetime
    priced_by: PricedBy | None = None


used = st.builds(
    Used,
    meter=st.sampled_from(["api_calls", "tokens", "storage.gb"]),
    quantity=st.decimals(min_value=0, max_value=1000, places=3),
    credits=st.decimals(min_value=0, max_value=500, places=9),
    at=st.integers(min_value=0, max_value=6 * 3600 - 1).map(lambda s: START + timedelta(seconds=s)),
    priced_by=st.sampled_from([None, PricedBy("model", "gpt-4"), PricedBy("model", "small"), PricedBy("region", "eu")]),
)


def stored_after(batches: list[list[Used]]) -> tuple[HourUsage | None, dict[datetime, HourUsage]]:
    """Given batches drawn one after another, the open hour and what the store holds (ADDs summed per hour)."""
    open_hour: HourUsage | None = None
    store: dict[datetime, HourUsage] = {}
    for batch in batches:
        open_hour, closed = tally(open_hour, batch)
        for hour in closed:
            store[hour.hour] = store.get(hour.hour, HourUsage(hour.hour)).merged(hour)
    return open_hour, store


@settings(max_examples=300)
@given(st.lists(st.lists(used, max_size=8), max_size=8))
def test_open_and_stored_hours_add_up_to_every_event(batches: list[list[Used]]) -> None:
    # When every batch is tallied into the open hour and the store
    open_hour, store = stored_after(batches)

    # Then the hours read back (open hour merged with the store) equal the events summed per hour, per meter and
    # per meter and priced value
    expected = by_hour(u for batch in batches for u in batch)
    read = merged_hours(open_hour, store.values())
    assert {h.hour: (dict(h.meters), dict(h.priced)) for h in read} == {
        hour: (dict(h.meters), dict(h.priced)) for hour, h in expected.items()
    }
    # And each priced part is the sum of exactly the events that value priced
    priced_events = sum(1 for batch in batches for u in batch if u.priced_by is not None)
    assert sum(u.events for h in read for u in h.priced.values()) == priced_events
    # And the open hour is the latest hour seen, never stored while it is open
    if expected:
        assert open_hour is not None and open_hour.hour == max(expected)
        assert open_hour.hour not in store


def test_a_late_event_goes_to_its_own_hour_and_leaves_the_open_hour_alone() -> None:
    # Given an open hour at 05:00
    open_hour, _ = tally(None, [Used("api_calls", Decimal(2), Decimal(1), START + timedelta(hours=5))])

    # When an event of 03:00 arrives
    after, closed = tally(open_hour, [Used("api_calls", Decimal(4), Decimal(2), START + timedelta(hours=3, minutes=7))])

    # Then 03:00 is added to the store and 05:00 stays open, unchanged
    assert after == open_hour
    assert closed == (HourUsage(START + timedelta(hours=3), {"api_calls": MeterUsage(Decimal(4), Decimal(2), 1)}),)


def test_an_hour_closed_after_the_wallet_was_read_is_counted_once() -> None:
    # Given a reader who read the wallet with 05:00 open, and then the store after 05:00 was closed into it
    open_hour = HourUsage(START + timedelta(hours=5), {"tokens": MeterUsage(Decimal(10), Decimal(1), 3)})
    stored = [open_hour.plus({"tokens": MeterUsage(Decimal(1), Decimal("0.1"), 1)})]

    # When the reader merges what it read
    read = merged_hours(open_hour, stored)

    # Then 05:00 is counted from the store alone
    assert read == stored
