"""Speech datasets labelled from their file layout: Speech Commands v2, CREMA-D and RAVDESS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .common import DatasetError, Entry, audio_files, read_lines, require_dir

CREMA_D_EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
CREMA_D_LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified", "X": "unspecified"}
RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}


def read_speech_commands(root: Path) -> Iterator[Entry]:
    """Speech Commands v0.02 (Warden 2018), official layout::

        <root>/<word>/<speaker>_nohash_<n>.wav      35 words; _background_noise_/ is ignored
        <root>/validation_list.txt                  <word>/<file>.wav, one per line
        <root>/testing_list.txt

    Labels: the word; split: ``validation`` or ``test`` when listed, else ``train``.
    """
    split_of = {}
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        split_of.update(dict.fromkeys(read_lines(root / name), split))
    words = sorted(p for p in require_dir(root).iterdir() if p.is_dir() and not p.name.startswith("_"))
    for folder in words:
        for path in audio_files(folder):
            relative = f"{folder.name}/{path.name}"
            yield Entry(
                audio=path,
                labels=[folder.name],
                split=split_of.get(relative, "train"),
                licence="CC-BY-4.0",
                extra={"speaker": path.name.split("_", 1)[0]},
            )


def read_crema_d(root: Path) -> Iterator[Entry]:
    """CREMA-D (Cao et al. 2014), official repository layout::

        <root>/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav    e.g. 1001_DFA_ANG_XX.wav

    Labels: the emotion's name (``anger``, ``disgust``, ``fear``, ``happy``, ``neutral``, ``sad``
    for ANG, DIS, FEA, HAP, NEU, SAD); actor, sentence and intensity level go to the extra fields.
    No official split (split is empty). Licence ODbL-1.0.
    """
    for path in audio_files(require_dir(root / "AudioWAV")):
        parts = path.stem.split("_")
        valid = len(parts) == 4 and parts[2] in CREMA_D_EMOTIONS and parts[3] in CREMA_D_LEVELS
        yield Entry(
            audio=path,
            labels=[CREMA_D_EMOTIONS[parts[2]]] if valid else [],
            licence="ODbL-1.0",
            extra={"actor": parts[0], "sentence": parts[1], "level": CREMA_D_LEVELS[parts[3]]} if valid else {},
            problem="" if valid else "file name is not <actor>_<sentence>_<emotion>_<level>",
        )


def ravdess_fields(stem: str) -> dict | None:
    """The seven numeric fields of a RAVDESS file name, or None when it does not follow them."""
    parts = stem.split("-")
    if len(parts) != 7 or not all(p.isdigit() for p in parts) or parts[2] not in RAVDESS_EMOTIONS:
        return None
    modality, channel, emotion, intensity, statement, repetition, actor = parts
    return {
        "emotion": RAVDESS_EMOTIONS[emotion],
        "vocal_channel": {"01": "speech", "02": "song"}.get(channel, channel),
        "intensity": {"01": "normal", "02": "strong"}.get(intensity, intensity),
        "statement": RAVDESS_STATEMENTS.get(statement, statement),
        "repetition": int(repetition),
        "actor": int(actor),
        "actor_sex": "male" if int(actor) % 2 else "female",
        "modality": modality,
    }


def read_ravdess(root: Path) -> Iterator[Entry]:
    """RAVDESS (Livingstone & Russo 2018) audio-only files, official layout::

        <root>/Actor_<nn>/<modality>-<channel>-<emotion>-<intensity>-<statement>-<repetition>-<actor>.wav

    e.g. ``03-01-06-01-02-01-12.wav``. Labels: the emotion (``neutral``, ``calm``, ``happy``, ``sad``,
    ``angry``, ``fearful``, ``disgust``, ``surprised``); the other fields go to the extras. No
    official split. Licence CC-BY-NC-SA-4.0.
    """
    actors = sorted(p for p in require_dir(root).iterdir() if p.is_dir() and p.name.startswith("Actor_"))
    if not actors:
        raise DatasetError(f"{root}: no Actor_<nn>/ folder")
    for folder in actors:
        for path in audio_files(folder):
            fields = ravdess_fields(path.stem)
            yield Entry(
                audio=path,
                labels=[fields.pop("emotion")] if fields else [],
                licence="CC-BY-NC-SA-4.0",
                extra=fields or {},
                problem="" if fields else "file name is not the 7-field RAVDESS identifier",
            )
