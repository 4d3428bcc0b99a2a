"""Read-only probes: each returns frozen dataclasses of facts and never raises for a missing field."""
