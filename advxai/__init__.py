"""advxai: a reproducible study of adversarial examples and interpretability, as a package and a book.

Subpackages: ``data`` (data sets by name), ``models`` (classifiers by name), ``attacks``,
``interpreters``, ``defenses``, ``attributes``; modules ``metrics``, ``plots``, ``report``,
``runtime`` (device, seeds, cache), ``runner`` and ``cli`` (papermill / Jupyter Book).
"""
import os as _os

__version__ = "0.1.0"

if _os.environ.get("ADVXAI_FORBID_NETWORK") == "1":
    from .runtime import forbid_network as _forbid_network

    _forbid_network()
