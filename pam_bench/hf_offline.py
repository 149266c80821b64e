"""The Hugging Face hub stays off: pam-bench loads every model from a local, user-given path.

:func:`hub_offline` is called right before a model loads with ``from_pretrained`` (never at ``import
pam_bench``), so that a mistyped path fails locally instead of becoming a hub request. It sets
``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` unless the user set them, and, because
``huggingface_hub`` reads the variable once at import, also updates its constant when it is already
imported.
"""
from __future__ import annotations

import os
import sys

_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline() -> None:
    """Switch the Hugging Face libraries to offline mode for this process (a user's own setting wins)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        value = os.environ["HF_HUB_OFFLINE"] or os.environ["TRANSFORMERS_OFFLINE"]
        constants.HF_HUB_OFFLINE = value.upper() in _TRUE
