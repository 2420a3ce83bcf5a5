"""Synthetic speech from ``espeak-ng-data``: numbers, words and short sentences, each spoken by
several voices (language, voice variant, rate, pitch), with captions such as
"a man saying the number seven in English"; and the English ones again in flite's four voices and
Festival's two, so that the model does not learn one engine's sound as "speech". Festival's diphone
voice (``ked``) joins recordings of a real speaker's diphones: the nearest to a recorded voice.

Every (text, rendition) pair is one clip; the voice, rate and pitch of a rendition are picked by a
stable hash of the pair, so a rebuild makes the same clips. Labels: ``speech``, the language, the
speaker's gender (from the variant file's ``gender`` line) and the spoken text.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .captions import caption, stable_choice
from .item import Item, Skipped
from .licences import CopyrightFile
from .synth import FestivalSpec, FliteSpec, SpeechSpec

ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")

WORDS = """
apple baby ball banana bell bicycle bird boat book bottle bread bridge brother car cat chair cheese
child city clock cloud coffee computer cow cup dog door dragon drum duck egg elephant engine farm father
fire fish flower forest fox friend frog garden glass guitar hammer hat horse house ice island key king
kitchen knife lamp leaf lion machine market milk money monkey moon morning mother mountain mouse music
night ocean orange paper pencil phone piano pig plane queen rabbit radio rain river road robot rock rose
school sheep ship shoe sister snake snow soldier star stone storm street sugar summer sun table teacher
telephone thunder tiger tower town train tree truck water whale wheel wind window winter wolf wood world
yes no hello goodbye please thanks stop go left right up down open close start finish help wait run walk
jump sing dance eat drink sleep read write listen speak look find give take play work come watch laugh cry
red blue green yellow black white brown purple happy sad hot cold fast slow big small loud quiet
""".split()

SUBJECTS = ("the dog", "my brother", "the old man", "a small bird", "the teacher", "our neighbour", "the train",
            "the children", "a black cat", "the wind", "my friend", "the baby", "the soldier", "the rain")
PREDICATES = ("is sleeping", "runs to the river", "sings every morning", "is very loud tonight",
              "opened the door", "likes cold water", "came home late", "is waiting outside",
              "never stops talking", "jumped over the fence", "was here yesterday", "looks tired")

# espeak-ng language codes and names; digits and small numbers are spoken in each.
LANGUAGES = {"en": "English", "en-us": "English", "en-gb-scotland": "English", "en-029": "English",
             "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
             "nl": "Dutch", "pl": "Polish", "ru": "Russian", "sv": "Swedish", "fi": "Finnish", "tr": "Turkish",
             "hi": "Hindi", "cmn": "Mandarin Chinese", "ja": "Japanese", "el": "Greek", "cs": "Czech"}
ENGLISH = ("en", "en-us", "en-gb-scotland", "en-029")
SPEAKERS = {"male": "a man", "female": "a woman", "": "a person"}
FLITE_VOICES = {"kal16": "male", "awb": "male", "rms": "male", "slt": "female"}  # flite 2.2's built-in voices
FESTIVAL_GENDERS = {"ked_diphone": "male", "cmu_us_slt_arctic_hts": "female"}  # Debian's English Festival voices
PITCHES = {"male": (85, 100, 115, 130, 150), "female": (150, 170, 190, 215, 240)}  # Hz, flite's and Festival's
STRETCHES = (0.8, 0.9, 1.0, 1.15, 1.3)  # duration factors, flite's and Festival's
SECOND_ENGINE_SHARE = 4  # flite and Festival speak each English utterance in a quarter of espeak-ng's renditions


def english_number(n: int) -> str:
    """0..100 in words ("forty-two")."""
    if n < 20:
        return ONES[n]
    if n == 100:
        return "one hundred"
    return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])


@dataclass(frozen=True)
class Utterance:
    text: str        # what espeak-ng reads
    phrase: str      # how the caption names it
    kind: str        # number, word or sentence
    languages: tuple[str, ...]
    renditions: int


def utterances() -> list[Utterance]:
    found = [Utterance(ONES[n], f"the number {ONES[n]}", "number", ENGLISH, 150) for n in range(10)]
    found += [Utterance(english_number(n), f"the number {english_number(n)}", "number", ENGLISH, 10)
              for n in range(10, 101)]
    others = tuple(code for code in LANGUAGES if code not in ENGLISH)
    found += [Utterance(str(n), f"the number {n}", "number", others, 40) for n in range(21)]
    found += [Utterance(word, f'the word "{word}"', "word", ENGLISH, 18) for word in WORDS]
    found += [Utterance(f"{s} {p}.", f'"{s} {p}"', "sentence", ENGLISH, 8) for s in SUBJECTS for p in PREDICATES]
    return found


def _variants(data: Path) -> dict[str, str]:
    """Voice variant name -> gender ("male", "female" or "" when the file does not say)."""
    variants = {}
    for path in sorted((data / "espeak-ng-data" / "voices" / "!v").iterdir()):
        gender = ""
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "gender":
                gender = parts[1].lower() if parts[1].lower() in ("male", "female") else ""
        variants[path.name] = gender
    return variants


def speech_items(root: Path, copyright: CopyrightFile, spoken: Sequence[Utterance] | None = None,
                 first_rendition: int = 0) -> tuple[list[Item], list[Skipped]]:
    """Items for every utterance x rendition; ``root`` is the unpacked ``espeak-ng-data`` (or ``/``
    where espeak-ng is installed). ``spoken`` and ``first_rendition`` give other utterances or further
    renditions than the corpus's (a held-out set: renditions from 150 on of the digits, say)."""
    found = sorted(root.glob("usr/lib/*/espeak-ng-data"))
    if not found:
        raise FileNotFoundError("no usr/lib/*/espeak-ng-data folder in the package")
    data = found[0].parent
    variants = _variants(data)
    names = sorted(variants)
    licence = copyright.licence_for(found[0].relative_to(root).as_posix() + "/phondata")
    items = []
    for utterance in utterances() if spoken is None else spoken:
        for rendition in range(first_rendition, first_rendition + utterance.renditions):
            key = f"espeak-ng#{utterance.kind}={utterance.text}#{rendition}"
            code = stable_choice(utterance.languages, key, salt="language")
            variant = stable_choice(names, key, salt="variant")
            speed = stable_choice([120, 140, 160, 175, 190, 210], key, salt="speed")
            pitch = stable_choice([25, 35, 50, 65, 80], key, salt="pitch")
            gender, language = variants[variant], LANGUAGES[code]
            spec = SpeechSpec(str(data), utterance.text, f"{code}+{variant}", speed, pitch)
            items.append(_spoken_item(key, spec, utterance, language, gender, f"{code}+{variant}", licence))
    return items, []


def flite_items(licence: str) -> list[Item]:
    """The English utterances in flite's voices, rates and pitches (a rendition each draw)."""
    return [_spoken_item(key, FliteSpec(utterance.text, voice, stretch, pitch), utterance, "English", gender,
                         f"flite+{voice}", licence)
            for key, utterance, voice, gender, stretch, pitch in _english_renditions("flite", FLITE_VOICES)]


def festival_items(licences: dict[str, str]) -> list[Item]:
    """The English utterances in Festival's voices and rates, and the diphone voice's pitches (the HTS
    voice keeps its own); ``licences``: voice -> licence."""
    return [_spoken_item(key, FestivalSpec(utterance.text, voice, stretch, 0 if voice.endswith("_hts") else pitch),
                         utterance, "English", gender, f"festival+{voice}", licences[voice])
            for key, utterance, voice, gender, stretch, pitch in _english_renditions("festival", FESTIVAL_GENDERS)]


def _english_renditions(engine: str, voices: dict[str, str]) -> Iterator[tuple[str, Utterance, str, str, float, int]]:
    """``(key, utterance, voice, gender, stretch, pitch)`` for each of a second engine's renditions of the
    English utterances (a quarter as many as espeak-ng's), drawn by a stable hash of the key."""
    for utterance in (u for u in utterances() if u.languages == ENGLISH):
        for rendition in range(max(1, utterance.renditions // SECOND_ENGINE_SHARE)):
            key = f"{engine}#{utterance.kind}={utterance.text}#{rendition}"
            voice = stable_choice(sorted(voices), key, salt="voice")
            gender = voices[voice]
            stretch = stable_choice(list(STRETCHES), key, salt="stretch")
            yield key, utterance, voice, gender, stretch, stable_choice(PITCHES[gender], key, salt="pitch")


def _spoken_item(key: str, spec: SpeechSpec | FliteSpec | FestivalSpec, utterance: Utterance, language: str, gender: str,
                 voice: str, licence: str) -> Item:
    """One rendition of ``utterance``: its caption, labels and metadata, whichever engine speaks it."""
    text = caption("speech", key, speaker=SPEAKERS[gender], phrase=utterance.phrase, language=language)
    labels = ["speech", language, *([gender] if gender else []), utterance.text.rstrip(".")]
    extra = {"words": utterance.text, "language": language, "gender": gender, "voice": voice,
             "speech_kind": utterance.kind}
    return Item(key, spec, [text], labels, licence, extra)
