"""Secrets Manager values through Powertools' cache, with a provider (and client) owned by the caller.

`parameters.get_secret` keeps one provider for the whole process, with the boto3 client it made first. A handler
builds a `SecretValue` in a cached wiring function instead, so whatever forgets the wiring (a new execution
environment; the local stack's `cold_start`, when it restarts against another moto) forgets the client too.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.parameters import SecretsProvider


class SecretValue:
    """One secret's string value as bytes, fetched at most every `max_age` seconds."""

    def __init__(self, secret_id: str, max_age: int = 300, provider: SecretsProvider | None = None) -> None:
        self._secret_id = secret_id
        self._max_age = max_age
        self._provider = provider or SecretsProvider()

    def __call__(self) -> bytes:
        value = self._provider.get(self._secret_id, max_age=self._max_age)
        if not isinstance(value, str):
            raise TypeError("the secret must hold a string")  # never its value: it may be logged
        return value.encode()
