"""PyPI packages through uv, for both backends: the uv binary, resolving `pip:` sections, installing
locked wheels (hashes required, nothing built)."""
