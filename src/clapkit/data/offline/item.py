"""What a source reader produces: one :class:`Item` per clip to make, ``(name, reason)`` per file skipped."""
from __future__ import annotations

from dataclasses import dataclass, field

from .audio import FileSegment
from .synth import Rendered


@dataclass
class Item:
    """One clip to make: ``source`` is a file on disk, a segment of one, or something to render."""

    name: str
    source: str | FileSegment | Rendered
    captions: list[str]
    labels: list[str]
    licence: str
    extra: dict = field(default_factory=dict)


Skipped = tuple[str, str]
