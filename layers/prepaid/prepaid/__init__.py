"""Prepaid credits: the domain, its use cases and the AWS adapters shared by every function."""
