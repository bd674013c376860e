"""The inventory example: a service that owns item records (see contract.py)."""
