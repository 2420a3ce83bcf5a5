"""File name suffixes treated as audio when a folder is searched (no heavy imports: the command
line uses this before loading torch): what libsndfile decodes, plus the containers PyAV opens."""

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".aiff", ".aif",
                  ".m4a", ".aac", ".mp4", ".webm", ".mkv")


def has_audio_suffix(name: str) -> bool:
    """True for ``x.wav``, ``X.FLAC`` and a file named just ``.wav``."""
    return name.lower().endswith(AUDIO_SUFFIXES)
