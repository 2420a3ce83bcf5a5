"""The packages the offline corpus is built from, their split, and how each is read.

Sources are Debian packages, except the music rendered from music21's corpus (a PyPI package).
Splits are by SOURCE, never by clip, so no recording (or near-copy from the same game, or another
rendition of the same piece) is on both sides of a split:

* **train**: megaglest-data, wesnoth-1.16-data, ufoai-sound, openarena-data, minetest-data,
  hedgewars-data, sound-theme-freedesktop, lomiri-sounds, lmms-common, fluid-soundfont-gm,
  csound-soundfont and musescore-general-soundfont-small (notes and drum hits rendered from three GM
  SoundFonts), ktuberling-data, asterisk-core-sounds-en-wav, 0ad-data, widelands-data,
  warzone2100-data, espeak-ng-data and flite (two speech synthesizers), music21-tunes (Bach
  chorales, Ryan's and O'Neill's tunes rendered with fluid-soundfont-gm).
  Optional (``--add-sources``): festival, a third speech synthesizer; real recorded voices:
  asterisk-core-sounds-{es,fr,it,ru}-wav (telephone prompts), klettres-data (letters and syllables in
  twenty languages), csmash-data (an umpire calling numbers).
* **val**: lincity-ng-data, scorched3d-data, sound-icons, supertux-data, music21-airs (Aird's Airs).
* **test**: warmux-data, oxygen-sounds, sonic-pi-samples.
* **evaluation sets** (labels from outside the training metadata, never trained on):
  hydrogen-drumkits (drum instrument names from each kit's ``drumkit.xml``), timgm6mb-soundfont
  (GM families rendered from a different SoundFont than training's), and FSDD spoken digits
  (read in place, see :mod:`.build`).

A reader turns an extracted package tree into :class:`Item` s (what to decode or render, captions,
labels, licence) plus ``(name, reason)`` pairs for files it has to skip.
"""
from __future__ import annotations

import gzip
import importlib.util
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from ...audio.formats import has_audio_suffix
from ...audio.io import AudioError, audio_info
from ...errors import UsageError
from .audio import FileSegment
from .captions import all_captions, caption, dedupe, kind_of, name_words, split_words
from .gm import drum_grid, note_grid
from .item import Item, Skipped
from .licences import UNKNOWN, CopyrightFile, guess_licence, read_package_copyright
from .music import music_items
from .speech import english_number, festival_items, flite_items, speech_items
from .synth import DRUM_BANK, FESTIVAL_VOICES, NoteSpec

RESERVED = frozenset({"openttd-opensfx", "gcompris-qt-data", "tuxpaint-stamps-default"})


class ReservedPackageError(UsageError):
    """A reserved package was asked for; the builder never downloads or reads these."""


def refuse_reserved(package: str) -> None:
    if package in RESERVED:
        raise ReservedPackageError(f"package {package!r} is reserved and is never downloaded or read")


Reader = Callable[[Path, "SourceSpec", CopyrightFile], tuple[list[Item], list[Skipped]]]


@dataclass(frozen=True)
class SourceSpec:
    """How one package becomes clips. ``include``: globs on paths inside the package (for music21,
    the corpus folders);
    ``archives``: globs of zip files (``.pk3``) whose audio members are read too;
    ``metadata``: further packages extracted beside it for their metadata only."""

    package: str
    split: str
    reader: Reader
    kind: str = "effect"
    include: tuple[str, ...] = ("usr/share/*",)
    archives: tuple[str, ...] = ()
    context: int = 2
    stopwords: frozenset[str] = frozenset()
    abbreviations: Mapping[str, str] = field(default_factory=dict)
    metadata: tuple[str, ...] = ()
    pypi: str = ""  # set: the source is this installed Python distribution, not a Debian package
    segments: int = 0  # further 10 s clips taken from each long file (training sources only)
    default: bool = True  # False: built only when asked for (``--add-sources``), e.g. what an A/B tried


def _wanted(name: str, spec: SourceSpec) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in spec.include)


def audio_files(root: Path, spec: SourceSpec) -> list[tuple[str, Path]]:
    """(path inside the package, file on disk) of every wanted audio file, zip members included
    (extracted next to their archive as ``<archive>.d/<member>``)."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        if has_audio_suffix(name) and _wanted(name, spec):
            found.append((name, path))
        elif any(fnmatchcase(name, pattern) for pattern in spec.archives):
            found.extend(_zip_members(path, name))
    return found


def _zip_members(archive: Path, name: str) -> list[tuple[str, Path]]:
    members = []
    target = archive.with_name(archive.name + ".d")
    with zipfile.ZipFile(archive) as z:
        for member in sorted(z.namelist()):
            if has_audio_suffix(member) and not member.endswith("/"):
                out = target / member
                if not out.exists():
                    z.extract(member, target)
                members.append((f"{name}/{member}", out))
    return members


SEGMENT_SECONDS = 10.0


def segments(name: str, path: Path, count: int) -> list[tuple[str, FileSegment]]:
    """Up to ``count`` further 10 s segments of a file longer than 20 s (its first 10 s are the
    file's own clip), named ``<file>#t=<start>s``."""
    if count <= 0:
        return []
    try:
        duration = audio_info(path).duration or 0.0
    except AudioError:
        return []  # the file's own clip reports why it cannot be read
    starts = [k * SEGMENT_SECONDS for k in range(1, count + 1) if (k + 1) * SEGMENT_SECONDS <= duration]
    return [(f"{name}#t={start:g}s", FileSegment(str(path), start, SEGMENT_SECONDS)) for start in starts]


def read_named_files(root: Path, spec: SourceSpec, copyright: CopyrightFile) -> tuple[list[Item], list[Skipped]]:
    """Captions from folder and file names (rules in :mod:`.captions`); a long file gives up to
    ``spec.segments`` further clips with the same caption."""
    items = []
    for name, path in audio_files(root, spec):
        stopwords = spec.stopwords | frozenset(split_words(spec.package))
        folders, stem = name_words(name, spec.context, stopwords, spec.abbreviations)
        kind = kind_of(name, spec.kind)
        phrase = " ".join(dedupe(folders + stem))
        if not phrase:
            phrase = "an unnamed sound"
        captions, labels, licence = [caption(kind, name, phrase=phrase)], dedupe([kind] + stem), copyright.licence_for(name)
        items.append(Item(name, str(path), captions, labels, licence))
        for segment_name, segment in segments(name, path, spec.segments):
            items.append(Item(segment_name, segment, captions, labels, licence, {"segment_start": segment.start}))
    return items, []


LANGUAGES = {
    "ca": "Catalan", "da": "Danish", "de": "German", "el": "Greek", "en": "English", "es": "Spanish",
    "fi": "Finnish", "fr": "French", "ga": "Irish", "gl": "Galician", "id": "Indonesian",
    "it": "Italian", "lt": "Lithuanian", "nds": "Low German", "nl": "Dutch", "nn": "Norwegian Nynorsk",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sl": "Slovenian", "sr": "Serbian",
    "sv": "Swedish", "uk": "Ukrainian", "wa": "Walloon", "ar": "Arabic", "cs": "Czech", "he": "Hebrew",
    "hu": "Hungarian", "ml": "Malayalam", "nb": "Norwegian Bokmål", "sk": "Slovak", "tn": "Setswana",
}


def _language(code: str) -> str:
    base = code.split("@")[0]
    return LANGUAGES.get(base, base)


# Scene prefixes of the sound names ("egypt_camel"): not part of the spoken word.
KTUBERLING_SCENES = frozenset({"egypt", "xmas", "pizzeria", "tux", "robin", "noel"})


def read_ktuberling(root: Path, spec: SourceSpec, copyright: CopyrightFile) -> tuple[list[Item], list[Skipped]]:
    """Spoken words: each ``<lang>.soundtheme`` maps an English object name to a recording."""
    items, skipped, seen = [], [], set()
    for theme in sorted(root.glob("usr/share/ktuberling/sounds/*.soundtheme")):
        language = _language(theme.stem)
        for sound in ET.parse(theme).getroot().iter("sound"):
            relative = f"usr/share/ktuberling/sounds/{sound.get('file')}"
            path = root / relative
            if relative in seen:
                continue
            seen.add(relative)
            if not path.is_file():
                skipped.append((relative, "listed in the sound theme but missing"))
                continue
            words = [w for w in split_words(sound.get("name", "")) if w not in KTUBERLING_SCENES]
            word = " ".join(words) or sound.get("name", "")
            items.append(Item(relative, str(path), [caption("word", relative, phrase=word, language=language)],
                              ["speech", language, word], copyright.licence_for(relative),
                              {"language": theme.stem, "word": word}))
    return items, skipped


ASTERISK_TRANSCRIPTS = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
ASTERISK_SOUNDS = "usr/share/asterisk/sounds/en_US_f_Allison/"
ASTERISK_VOICES = "usr/share/asterisk/sounds/"


def _asterisk_transcripts(path: Path) -> dict[str, str]:
    """``prompt/name: what is said`` lines of an Asterisk sound set's transcript file."""
    transcripts = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if ":" in line and not line.startswith(";"):
                key, text = line.split(":", 1)
                transcripts[key.strip()] = " ".join(text.split())
    return transcripts


def _is_tone(transcript: str) -> bool:
    """Bracketed transcripts (``[ascending tones]``) describe non-speech sounds."""
    return transcript.startswith("[") and transcript.endswith("]")


def read_asterisk(root: Path, spec: SourceSpec, copyright: CopyrightFile) -> tuple[list[Item], list[Skipped]]:
    """Telephone prompts with their transcripts from ``asterisk-core-sounds-en``; bracketed
    transcripts (``[ascending tones]``) describe non-speech sounds and become effect captions."""
    transcripts = _asterisk_transcripts(root / ASTERISK_TRANSCRIPTS)
    items, skipped = [], []
    for name, path in audio_files(root, spec):
        key = name[len(ASTERISK_SOUNDS):].rsplit(".", 1)[0]
        text = transcripts.get(key)
        if not text:
            skipped.append((name, "no transcript"))
            continue
        if _is_tone(text):
            kind, labels, phrase = "effect", ["effect", "tone"], text.strip("[]")
        else:
            kind, labels, phrase = "transcript", ["speech", "English"], text
        items.append(Item(name, str(path), [caption(kind, name, phrase=phrase)], labels,
                          copyright.licence_for(name), {"transcript": text}))
    return items, skipped


RECORDED_SPEAKERS = {"f": "a woman", "m": "a man"}


def _recorded_speech(name: str, path: Path, phrase: str, language: str, speaker: str, licence: str,
                     extra: dict) -> Item:
    return Item(name, str(path), [caption("recorded_speech", name, phrase=phrase, language=language, speaker=speaker)],
                ["speech", language], licence, extra)


def read_asterisk_language(root: Path, spec: SourceSpec, copyright: CopyrightFile) -> tuple[list[Item], list[Skipped]]:
    """An Asterisk sound set in another language (``<lang>_<REGION>_<f|m>_<Name>``), real recordings of
    one speaker. Prompts keep their transcript; the digits become "the number N", as espeak-ng's numbers
    in other languages are captioned, because several upstream digit transcripts are wrong."""
    voice = next(p.name for p in sorted((root / ASTERISK_VOICES).iterdir()) if p.is_dir())
    code, _, gender, _ = voice.split("_", 3)
    language, speaker = _language(code), RECORDED_SPEAKERS.get(gender, "a person")
    transcripts = _asterisk_transcripts(root / f"usr/share/doc/{spec.metadata[0]}/core-sounds-{code}.txt.gz")
    # The DEP-5 stanzas name upstream's tarballs by language ("it-*"); Allison's own sets fall to "*".
    licence = copyright.licence_for(f"{code}-sounds")
    items, skipped = [], []
    for name, path in audio_files(root, spec):
        key = name[len(ASTERISK_VOICES + voice) + 1:].rsplit(".", 1)[0]
        folder, _, stem = key.rpartition("/")
        text = transcripts.get(key, "")
        if folder == "digits" and stem.isdigit():
            phrase = f"the number {int(stem)}"
        elif text and not _is_tone(text):
            phrase = f'"{text}"'
        elif text:
            items.append(Item(name, str(path), [caption("effect", name, phrase=text.strip("[]"))], ["effect", "tone"],
                              licence, {"transcript": text}))
            continue
        else:
            skipped.append((name, "no transcript"))
            continue
        items.append(_recorded_speech(name, path, phrase, language, speaker, licence, {"transcript": text}))
    return items, skipped


NUMBER_WORDS = {english_number(n): n for n in range(100)}


def read_spoken_numbers(root: Path, spec: SourceSpec, copyright: CopyrightFile) -> tuple[list[Item], list[Skipped]]:
    """Recordings named after the English number they speak (``csmash-data``'s umpire: ``seven.wav``);
    the package's other sounds are skipped."""
    items, skipped = [], []
    for name, path in audio_files(root, spec):
        stem = Path(name).stem.lower()
        if stem not in NUMBER_WORDS:
            skipped.append((name, "not a spoken number"))
            continue
        items.append(_recorded_speech(name, path, f"the number {stem}", "English", "a person",
                                      copyright.licence_for(name), {"word": stem, "number": NUMBER_WORDS[stem]}))
    return items, skipped


KLETTRES = "usr/share/klettres/"


def read_klettres(root: Path, spec: SourceSpec, copyright: CopyrightFile) -> tuple[list[Item], list[Skipped]]:
    """KLettres' recordings of letters (``<lang>/alpha/B.ogg``) and syllables (``<lang>/syllab/ba.ogg``),
    real voices in twenty languages."""
    items, skipped = [], []
    for name, path in audio_files(root, spec):
        code, folder, file = name[len(KLETTRES):].split("/")
        text = re.sub(r"[\d-]+", "", Path(file).stem)  # numbered names: "a-01", "26-pek"
        language = _language(code.split("_")[0])
        if folder == "alpha":
            phrase = f"the letter {text.upper()}"
        elif folder == "syllab":
            phrase = f'"{text.lower()}"'
        else:
            skipped.append((name, f"not a letter or syllable ({folder})"))
            continue
        items.append(_recorded_speech(name, path, phrase, language, "a person", copyright.licence_for(name),
                                      {"language": code, "text": text}))
    return items, skipped


def _soundfont(root: Path) -> tuple[str, Path]:
    found = sorted(root.glob("usr/share/sounds/sf2/*.sf2")) + sorted(root.glob("usr/share/sounds/sf3/*.sf3"))
    if not found:
        raise FileNotFoundError("no SoundFont (.sf2 or .sf3) under usr/share/sounds/sf2 or sf3")
    return found[0].relative_to(root).as_posix(), found[0]


def note_items(root: Path, copyright: CopyrightFile, grid: dict) -> list[Item]:
    name, path = _soundfont(root)
    items = []
    for note in note_grid(**grid):
        key = f"{name}#program={note.program},pitch={note.pitch},velocity={note.velocity},seconds={note.seconds}"
        slots = {"instrument": note.instrument, "family": note.family, "loudness": note.loudness, "height": note.height,
                 "length": note.length, "loudness_adverb": f"{note.loudness}ly"}
        spec = NoteSpec(str(path), note.program, note.pitch, note.velocity, note.seconds)
        extra = {"family": note.family, "instrument": note.instrument, "program": note.program,
                 "pitch": note.pitch, "velocity": note.velocity}
        items.append(Item(key, spec, all_captions("note", key, **slots), [note.family, note.instrument],
                          copyright.licence_for(name), extra))
    return items


def drum_items(root: Path, copyright: CopyrightFile) -> list[Item]:
    name, path = _soundfont(root)
    items = []
    for hit in drum_grid():
        key = f"{name}#kit={hit.kit},key={hit.key},velocity={hit.velocity}"
        slots = {"instrument": hit.instrument, "kit": hit.kit_name, "loudness": hit.loudness,
                 "loudness_adverb": f"{hit.loudness}ly"}
        spec = NoteSpec(str(path), hit.kit, hit.key, hit.velocity, 0.5, bank=DRUM_BANK)
        extra = {"kit": hit.kit_name, "instrument": hit.instrument, "pitch": hit.key, "velocity": hit.velocity}
        items.append(Item(key, spec, all_captions("drum_hit", key, **slots), ["drum", hit.instrument],
                          copyright.licence_for(name), extra))
    return items


def read_training_notes(root: Path, spec: SourceSpec, copyright: CopyrightFile) -> tuple[list[Item], list[Skipped]]:
    """The full program x pitch x velocity x duration grid (NSynth-style labels) and every GM
    percussion sound of the SoundFont's drum kits."""
    return note_items(root, copyright, {}) + drum_items(root, copyright), []


def read_eval_notes(root: Path, spec: SourceSpec, copyright: CopyrightFile) -> tuple[list[Item], list[Skipped]]:
    """One loud, long note per program and pitch: an instrument-family evaluation set."""
    return note_items(root, copyright, {"loudnesses": ("loud",), "lengths": ("long",)}), []


def read_speech(root: Path, spec: SourceSpec, copyright: CopyrightFile) -> tuple[list[Item], list[Skipped]]:
    """espeak-ng voices speaking numbers, words and sentences (see :mod:`.speech`)."""
    return speech_items(root, copyright)


FLITE_LICENCE = "CMU-Flite (BSD-style)"
FREE_USE_GRANT = "Permission is hereby granted, free of charge, to use and distribute"


def read_flite(root: Path, spec: SourceSpec, copyright: CopyrightFile) -> tuple[list[Item], list[Skipped]]:
    """flite's voices speaking the English utterances (see :mod:`.speech`). Its copyright file is not
    machine-readable; the voices and engine are under CMU's permissive licence, checked by its text."""
    text = (root / "usr/share/doc/flite/copyright").read_text(encoding="utf-8", errors="replace")
    if "Carnegie Mellon University" not in text or FREE_USE_GRANT not in " ".join(text.split()):
        raise ValueError("flite's copyright file does not carry CMU's Flite licence; its licence is unknown")
    return flite_items(FLITE_LICENCE), []


FESTIVAL_DIPHONE_LICENCE = "CSTR-Festival (BSD-style)"
FESTIVAL_DIPHONE_HOLDER = "Centre for Speech Technology Research"
HTS_VOICE_FILE = "usr/share/festival/voices/us/cmu_us_slt_arctic_hts/hts/cmu_us_slt_arctic_hts.htsvoice"


def read_festival(root: Path, spec: SourceSpec, copyright: CopyrightFile) -> tuple[list[Item], list[Skipped]]:
    """Festival's English voices speaking the English utterances (see :mod:`.speech`), each clip under its
    voice package's licence: the ked diphones' copyright file is not machine-readable and is checked by
    its text (Edinburgh's permissive licence), the HTS voice's is."""
    ked = FESTIVAL_VOICES["ked_diphone"]
    text = " ".join((root / f"usr/share/doc/{ked}/copyright").read_text(encoding="utf-8", errors="replace").split())
    if FESTIVAL_DIPHONE_HOLDER not in text or FREE_USE_GRANT not in text:
        raise ValueError(f"{ked}'s copyright file does not carry Edinburgh's Festival licence; its licence is unknown")
    hts = read_package_copyright(root, FESTIVAL_VOICES["cmu_us_slt_arctic_hts"]).licence_for(HTS_VOICE_FILE)
    if hts == UNKNOWN:
        raise ValueError(f"{FESTIVAL_VOICES['cmu_us_slt_arctic_hts']}'s copyright file names no licence")
    return festival_items({"ked_diphone": FESTIVAL_DIPHONE_LICENCE, "cmu_us_slt_arctic_hts": hts}), []


def read_music(root: Path, spec: SourceSpec, copyright: CopyrightFile) -> tuple[list[Item], list[Skipped]]:
    """music21's public-domain scores rendered with the GM SoundFont unpacked beside (see :mod:`.music`)."""
    found = importlib.util.find_spec(spec.pypi)
    if found is None or found.origin is None:
        raise FileNotFoundError(f"the Python package {spec.pypi} is not installed (pip install {spec.pypi})")
    name, soundfont = _soundfont(root)
    soundfont_licence = read_package_copyright(root, spec.metadata[0]).licence_for(name)
    return music_items(Path(found.origin).parent / "corpus", spec.include, soundfont, soundfont_licence)


DRUMKITS = "usr/share/hydrogen/data/drumkits"


def _xml_text(element: ET.Element, tag: str) -> str:
    found = element.find(tag)
    return (found.text or "").strip() if found is not None else ""


def read_hydrogen(root: Path, spec: SourceSpec, copyright: CopyrightFile) -> tuple[list[Item], list[Skipped]]:
    """Drum sounds labelled with the instrument names in each kit's ``drumkit.xml``; the kit's own
    ``<license>`` wins over the package's copyright file when it names a licence."""
    items, skipped = [], []
    for kit_file in sorted(root.glob(f"{DRUMKITS}/*/drumkit.xml")):
        text = re.sub(r'\sxmlns="[^"]+"', "", kit_file.read_text(encoding="utf-8", errors="replace"), count=1)
        kit = ET.fromstring(text)
        kit_licence = guess_licence(_xml_text(kit, "license"))
        for instrument in kit.iter("instrument"):
            label = " ".join(split_words(_xml_text(instrument, "name")))
            for layer in instrument.iter("layer"):
                relative = (kit_file.parent / _xml_text(layer, "filename")).relative_to(root).as_posix()
                if not (root / relative).is_file():
                    skipped.append((relative, "listed in drumkit.xml but missing"))
                    continue
                licence = kit_licence if kit_licence != "unknown" else copyright.licence_for(relative)
                items.append(Item(relative, str(root / relative), [caption("drum", relative, phrase=label)],
                                  ["drum", label], licence, {"kit": kit_file.parent.name, "instrument": label}))
    return items, skipped


MEGAGLEST_ABBREVIATIONS = {"ack": "acknowledgement", "dr": "dragon rider"}
SONIC_PI_ABBREVIATIONS = {"ambi": "ambient", "bd": "bass drum", "sn": "snare", "elec": "electronic",
                          "perc": "percussion", "hat": "hi-hat", "guit": "guitar", "vinyl": "vinyl record"}
OXYGEN_ABBREVIATIONS = {"im": "instant messaging", "sys": "system", "app": "application", "msg": "message"}

LONG_FILE_SEGMENTS = 6
ZERO_AD_ABBREVIATIONS = {"amb": "ambient", "bldg": "building", "inf": "infantry", "cav": "cavalry",
                         "civ": "citizen", "fs": "footstep"}
ZERO_AD_STOPWORDS = frozenset({"actor", "sz", "public", "zip"})

# Real recorded voices: Asterisk's prompts in four more languages, KLettres' letters and syllables,
# CannonSmash's umpire calling numbers.
REAL_SPEECH = (
    *(SourceSpec(f"asterisk-core-sounds-{code}-wav", "train", read_asterisk_language, kind="recorded_speech",
                 include=(ASTERISK_VOICES + "*",), metadata=(f"asterisk-core-sounds-{code}",), default=False)
      for code in ("es", "fr", "it", "ru")),
    SourceSpec("klettres-data", "train", read_klettres, kind="recorded_speech",
               include=(KLETTRES + "*/alpha/*", KLETTRES + "*/syllab/*"), default=False),
    SourceSpec("csmash-data", "train", read_spoken_numbers, kind="recorded_speech",
               include=("usr/share/games/csmash/wav/*",), default=False),
)

SOURCES: dict[str, SourceSpec] = {spec.package: spec for spec in (
    SourceSpec("megaglest-data", "train", read_named_files, abbreviations=MEGAGLEST_ABBREVIATIONS,
               segments=LONG_FILE_SEGMENTS),
    SourceSpec("wesnoth-1.16-data", "train", read_named_files, segments=LONG_FILE_SEGMENTS),
    SourceSpec("ufoai-sound", "train", read_named_files, archives=("*/0snd.pk3",), segments=LONG_FILE_SEGMENTS),
    SourceSpec("openarena-data", "train", read_named_files, archives=("*.pk3",), segments=LONG_FILE_SEGMENTS),
    SourceSpec("minetest-data", "train", read_named_files, segments=LONG_FILE_SEGMENTS),
    SourceSpec("hedgewars-data", "train", read_named_files, segments=LONG_FILE_SEGMENTS),
    SourceSpec("sound-theme-freedesktop", "train", read_named_files, kind="notification"),
    SourceSpec("lomiri-sounds", "train", read_named_files, kind="notification"),
    SourceSpec("lmms-common", "train", read_named_files, kind="instrument", include=("usr/share/lmms/samples/*",)),
    SourceSpec("fluid-soundfont-gm", "train", read_training_notes, kind="note"),
    SourceSpec("ktuberling-data", "train", read_ktuberling, kind="word"),
    SourceSpec("asterisk-core-sounds-en-wav", "train", read_asterisk, kind="transcript",
               include=(ASTERISK_SOUNDS + "*",), metadata=("asterisk-core-sounds-en",)),
    SourceSpec("0ad-data", "train", read_named_files, archives=("*public.zip",), context=3,
               stopwords=ZERO_AD_STOPWORDS, abbreviations=ZERO_AD_ABBREVIATIONS, segments=LONG_FILE_SEGMENTS),
    SourceSpec("widelands-data", "train", read_named_files, segments=LONG_FILE_SEGMENTS),
    SourceSpec("warzone2100-data", "train", read_named_files, archives=("*.wz",),
               stopwords=frozenset({"wz", "sequenceaudio"})),
    SourceSpec("espeak-ng-data", "train", read_speech, kind="speech"),
    SourceSpec("music21-tunes", "train", read_music, kind="score", include=("bach", "ryansMammoth", "oneills1850"),
               pypi="music21", metadata=("fluid-soundfont-gm",)),
    SourceSpec("lincity-ng-data", "val", read_named_files),
    SourceSpec("supertux-data", "val", read_named_files),
    SourceSpec("music21-airs", "val", read_music, kind="score", include=("airdsAirs",), pypi="music21",
               metadata=("fluid-soundfont-gm",)),
    SourceSpec("scorched3d-data", "val", read_named_files),
    SourceSpec("sound-icons", "val", read_named_files, kind="notification"),
    SourceSpec("warmux-data", "test", read_named_files),
    SourceSpec("oxygen-sounds", "test", read_named_files, kind="notification", abbreviations=OXYGEN_ABBREVIATIONS),
    SourceSpec("sonic-pi-samples", "test", read_named_files, kind="instrument", context=1,
               abbreviations=SONIC_PI_ABBREVIATIONS),
    # Added by the A/B in benchmarks/results/ab-soundfonts. They come last because the manifest lists
    # clips in this order and the training sampler draws by position: moving them changes the weights.
    SourceSpec("flite", "train", read_flite, kind="speech"),
    SourceSpec("csound-soundfont", "train", read_training_notes, kind="note"),
    SourceSpec("musescore-general-soundfont-small", "train", read_training_notes, kind="note"),
    # Optional: its A/B (benchmarks/results/ab-festival) lifted Festival's own voices, not real speakers.
    SourceSpec("festival", "train", read_festival, kind="speech", metadata=tuple(FESTIVAL_VOICES.values()),
               default=False),
    *REAL_SPEECH,
)}

EVAL_SOURCES: dict[str, SourceSpec] = {spec.package: spec for spec in (
    SourceSpec("hydrogen-drumkits", "eval_drums", read_hydrogen, kind="drum"),
    SourceSpec("timgm6mb-soundfont", "eval_gm", read_eval_notes, kind="note"),
)}


def default_sources() -> list[str]:
    """The training, validation and test sources a build reads unless told otherwise (all but the
    optional ones, such as ``festival``)."""
    return [name for name, spec in SOURCES.items() if spec.default]


def resolve_sources(names: list[str] | None) -> list[SourceSpec]:
    """The specs for ``names`` (the default training, validation and test sources when None); refuses
    reserved packages."""
    names = default_sources() if names is None else names
    for name in names:
        refuse_reserved(name)
        if name not in SOURCES and name not in EVAL_SOURCES:
            known = ", ".join(list(SOURCES) + list(EVAL_SOURCES))
            raise KeyError(f"unknown source {name!r} (known: {known})")
    return [SOURCES.get(name) or EVAL_SOURCES[name] for name in names]
