"""The same checks on every node: merge doctor documents, run the distributed smoke test."""
