"""Use cases: load, decide with the domain, commit atomically through a port."""
