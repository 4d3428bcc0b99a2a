"""Helpers shared by the test suites (fixtures built at test time live beside them)."""
