"""Audio front end: decoding and resampling (``io``), length policies (``windows``), log-mel (``features``)."""
from .features import LogMel, mel_filterbank
from .io import AudioError, AudioSource, describe, load_audio, stream_audio
from .windows import POLICIES, fit_length, iter_windows, tile

__all__ = ["AudioError", "AudioSource", "LogMel", "POLICIES", "describe", "fit_length", "iter_windows",
           "load_audio", "mel_filterbank", "stream_audio", "tile"]
