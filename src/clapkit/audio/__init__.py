"""Audio front end: decoding and resampling (``io``), length policies (``windows``), log-mel (``features``).

Names are imported lazily, so that ``clapkit.audio.formats`` stays light for the command line.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "LogMel": "features", "mel_filterbank": "features",
    "AudioError": "io", "AudioInfo": "io", "AudioSource": "io", "TruncatedAudioWarning": "io", "audio_info": "io",
    "describe": "io", "load_audio": "io", "read_audio": "io", "stream_audio": "io",
    "POLICIES": "windows", "FILLS": "windows", "fill": "windows", "fit_length": "windows", "iter_windows": "windows", "tile": "windows",
    "AUDIO_SUFFIXES": "formats",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'clapkit.audio' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
