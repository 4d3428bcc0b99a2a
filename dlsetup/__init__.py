"""dlsetup: a verified PyTorch/TensorFlow environment that fits this machine.

Importing this package is cheap on purpose: it pulls in nothing but the standard library, so
``dlsetup --help`` starts fast. Heavy modules (rattler, conda_lock, torch, tensorflow, pynvml)
are imported inside the functions that need them.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
