"""AWS adapters: boto3 clients are injected, so tests pass moto's or fakes."""
