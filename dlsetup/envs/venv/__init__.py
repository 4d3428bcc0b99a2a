"""The venv backend: PyTorch/TensorFlow from PyPI and PyTorch's wheel index, resolved by uv into a PEP
751 pylock.toml, checked, and installed into a virtual environment built beside its target."""
