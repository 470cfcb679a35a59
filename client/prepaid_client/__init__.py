"""A Python client of the prepaid-credits API, and the `prepaid` CLI over it (`prepaid_client.cli`)."""

from prepaid_client.client import DEFAULT_URL, PrepaidClient
from prepaid_client.errors import (
    ApiError,
    Conflict,
    Invalid,
    NotFound,
    PrepaidError,
    ServerError,
    Throttled,
    TooLarge,
    Unreachable,
)

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "Conflict",
    "Invalid",
    "NotFound",
    "PrepaidClient",
    "PrepaidError",
    "ServerError",
    "Throttled",
    "TooLarge",
    "Unreachable",
]
