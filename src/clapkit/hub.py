"""Hugging Face Hub access that fails fast and quietly when the machine is offline."""
from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlparse


def hub_reachable() -> bool:
    """False when offline mode is set or the Hub's host does not even resolve, so callers can
    skip huggingface_hub's retry loop (half a minute of warnings) and say what to do instead."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """Silence huggingface_hub's per-retry warnings; its final exception still reaches the caller."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
