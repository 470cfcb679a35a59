"""Runtime settings, read from the environment on first use (never at import) and validated."""

from __future__ import annotations

import os
from functools import cache

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
