"""Music rendered from the scores in music21's corpus through a GM SoundFont.

Only collections whose music is out of copyright and whose encodings carry no restriction are used:
Bach's chorales (MusicXML), Ryan's Mammoth Collection (1883), O'Neill's Music of Ireland (1903, the
``oneills1850`` folder) and Aird's Airs (1782-97). Palestrina and the Essen folk songs are left out:
their encodings are under licence agreements or of unclear status (see ``corpus/license.txt``).

Each rendition of a piece is a 10 s excerpt (from the start, or from 40 % into the piece) on one GM
instrument suited to the collection, at a tempo factor and a register (octave shift) picked by a
stable hash of the piece and rendition. Captions name the piece, its composer or collection, the
tune type (reel, jig, ...), the instrument, tempo and register ("a Bach chorale played on church
organ"); labels: ``music``, the collection, the tune type and the instrument family and name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .captions import caption, stable_choice
from .gm import GM_FAMILIES, GM_PROGRAMS
from .item import Item, Skipped
from .synth import ScoreSpec

EXCERPT_SECONDS = 10.0
TEMPI = {0.8: "slow", 1.0: "moderate tempo", 1.25: "fast"}
REGISTERS = {-12: "low", 0: "middle", 12: "high"}
CHORALE_PROGRAMS = (19, 20, 48, 52, 0, 61, 6, 16, 49, 68)   # church/reed organ, strings, choir, piano, brass, ...
TUNE_PROGRAMS = (110, 40, 73, 21, 78, 109, 22, 105, 24, 0, 74, 71, 46, 11)  # fiddle, violin, flute, accordion, ...
TUNE_TYPES = ("reel", "jig", "hornpipe", "strathspey", "clog", "highland fling", "waltz", "march", "polka",
              "slide", "set dance", "air", "quick step")


@dataclass(frozen=True)
class Collection:
    folder: str
    pattern: str
    renditions: int
    programs: tuple[int, ...]
    describe: str        # "{type}" and "{title}" are filled per piece
    default_qpm: float   # quarter notes per minute when the score gives no tempo


COLLECTIONS = (
    Collection("bach", "*.mxl", 2, CHORALE_PROGRAMS, "a Bach chorale", 80.0),
    Collection("ryansMammoth", "*.abc", 2, TUNE_PROGRAMS,
               "the {type} \"{title}\" from Ryan's Mammoth Collection", 110.0),
    Collection("oneills1850", "*.abc", 2, TUNE_PROGRAMS, "the Irish {type} \"{title}\"", 110.0),
    Collection("airdsAirs", "*.abc", 1, TUNE_PROGRAMS, "the Scottish {type} \"{title}\" from Aird's Airs",
               100.0),
)
LICENCE = "public-domain score (music21 corpus); rendered with {soundfont}"


def abc_tunes(text: str) -> list[tuple[str, str]]:
    """(title, ABC text) of each tune of an ABC file; the file's header lines go with every tune."""
    parts = re.split(r"(?m)^(?=X:)", text)
    header, tunes = (parts[0] if not parts[0].startswith("X:") else ""), []
    for part in parts:
        if not part.startswith("X:"):
            continue
        match = re.search(r"(?m)^T:\s*(.+)$", part)
        tunes.append(((match.group(1).strip() if match else "untitled"), header + part))
    return tunes


def tune_type(title: str) -> tuple[str, str]:
    """(tune type, title without it): "7th Regiment -- Reel" -> ("reel", "7th Regiment")."""
    name, _, suffix = title.partition("--")
    lowered = f"{suffix} {name}".lower()
    kind = next((t for t in TUNE_TYPES if re.search(rf"\b{t}s?\b", lowered)), "tune")
    return kind, " ".join(name.split()).strip(" .,") or title


def score_notes(score, default_qpm: float) -> list[tuple[float, float, int, int]]:
    """(start s, length s, MIDI pitch, velocity) of every note, tempo from the first metronome mark."""
    flat = score.flatten()
    marks = list(flat.getElementsByClass("MetronomeMark"))
    qpm = marks[0].getQuarterBPM() if marks and marks[0].getQuarterBPM() else default_qpm
    seconds_per_quarter = 60.0 / qpm
    notes = []
    for element in flat.notes:
        velocity = element.volume.velocity or 90
        length = float(element.quarterLength) * seconds_per_quarter
        for pitch in getattr(element, "pitches", ()):
            notes.append((float(element.offset) * seconds_per_quarter, length, int(pitch.midi), int(velocity)))
    return sorted(notes)


def excerpt(notes, start: float, tempo: float, shift: int) -> tuple[tuple[float, float, int, int], ...]:
    """Notes of ``[start, start + 10 s / tempo)`` scaled by ``tempo`` and moved ``shift`` semitones."""
    end = start + EXCERPT_SECONDS * tempo
    return tuple((round((s - start) / tempo, 4), round(length / tempo, 4), min(max(p + shift, 21), 108), v)
                 for s, length, p, v in notes if start <= s < end and length > 0)


def _pieces(corpus: Path, collection: Collection) -> list[tuple[str, str, object]]:
    """(name inside the corpus, title, parse function) of each piece of ``collection``."""
    import music21

    pieces = []
    for path in sorted((corpus / collection.folder).glob(collection.pattern)):
        relative = path.relative_to(corpus).as_posix()
        if path.suffix == ".abc":
            for number, (title, text) in enumerate(abc_tunes(path.read_text(encoding="utf-8", errors="replace"))):
                pieces.append((f"{relative}#{number}", title,
                               lambda text=text: music21.converter.parse(text, format="abc")))
        else:
            pieces.append((relative, path.stem, lambda path=path: music21.converter.parse(path)))
    return pieces


def music_items(corpus: Path, folders: tuple[str, ...], soundfont: Path,
                soundfont_licence: str) -> tuple[list[Item], list[Skipped]]:
    """Items for every piece x rendition of the collections in ``folders``."""
    items, skipped = [], []
    licence = LICENCE.format(soundfont=f"{soundfont.name} ({soundfont_licence})")
    for collection in (c for c in COLLECTIONS if c.folder in folders):
        for name, title, parse in _pieces(corpus, collection):
            try:
                notes = score_notes(parse(), collection.default_qpm)
            except Exception as e:  # music21 raises many types for malformed scores
                skipped.append((name, f"unparsable score: {type(e).__name__}"))
                continue
            kind, short_title = tune_type(title) if name.split("#")[0].endswith(".abc") else ("chorale", title)
            piece = collection.describe.format(type=kind, title=short_title)
            for rendition in range(collection.renditions):
                key = f"music21:{name}#{rendition}"
                program = stable_choice(collection.programs, key, salt="program")
                tempo = stable_choice(list(TEMPI), key, salt="tempo")
                shift = stable_choice(list(REGISTERS), key, salt="register")
                start = 0.0 if rendition == 0 else 0.4 * (notes[-1][0] if notes else 0.0)
                chosen = excerpt(notes, start, tempo, shift)
                if not chosen:
                    skipped.append((key, "no notes in the excerpt"))
                    continue
                instrument, family = GM_PROGRAMS[program], GM_FAMILIES[program // 8]
                text = caption("score", key, piece=piece, instrument=instrument, tempo=TEMPI[tempo],
                               register=REGISTERS[shift])
                spec = ScoreSpec(str(soundfont), program, chosen, EXCERPT_SECONDS)
                labels = ["music", collection.folder, kind, family, instrument]
                extra = {"collection": collection.folder, "title": short_title, "tune_type": kind,
                         "instrument": instrument, "family": family, "program": program, "tempo": tempo,
                         "transpose": shift}
                items.append(Item(key, spec, [text], labels, licence, extra))
    return items, skipped
