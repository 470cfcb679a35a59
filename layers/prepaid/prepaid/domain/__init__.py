"""Pure domain model: no I/O, no boto3, `Decimal` only."""
