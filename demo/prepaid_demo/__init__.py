"""The demo: a client of the system, apart from the local stack it runs against (`make demo`)."""
