"""Runtime settings, read from the environment on first use (never at import) and validated."""

from __future__ import annotations

import os
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TableSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    table_name: str = Field(alias="TABLE_NAME", min_length=3)


class BusSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)


@cache
def table_settings() -> TableSettings:
    return TableSettings.model_validate(dict(os.environ))


@cache
def bus_settings() -> BusSettings:
    return BusSettings.model_validate(dict(os.environ))


class UsageSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    usage_queue_url: str = Field(alias="USAGE_QUEUE_URL", min_length=1)
    drawdown_queue_url: str = Field(alias="DRAWDOWN_QUEUE_URL", min_length=1)
    dead_letter_queue_url: str = Field(alias="USAGE_DEAD_LETTER_QUEUE_URL", min_length=1)
    # What usage for a customer without a wallet does: "create" a wallet (the usage becomes overage) or "reject".
    unknown_customers: Literal["create", "reject"] = Field(alias="UNKNOWN_CUSTOMERS", default="create")
    rate_card_ttl_seconds: float = Field(alias="RATE_CARD_TTL_SECONDS", default=30.0, ge=0)


@cache
def usage_settings() -> UsageSettings:
    return UsageSettings.model_validate(dict(os.environ))
