"""Caption and label rules: captions come only from upstream metadata.

Rules, in order:

1. **Words from names.** A file's stem and its nearest ``context`` parent folders are split into
   words at ``_``, ``-``, ``.``, spaces and camelCase boundaries; digits are dropped
   (``stickfighter_attack11`` -> ``stickfighter attack``, ``RocketTakeoff1`` -> ``rocket takeoff``).
   Words in :data:`STOPWORDS` (packaging words such as ``sounds`` or ``data``), the words of the
   package's name and a source's own stop-words are removed, a source's abbreviations are expanded, repeats are dropped. The
   folder words come first (``voices/Robot/Hmm.ogg`` -> ``robot hmm``).
2. **Kind.** A file under a ``music`` folder is music, under ``voices``/``voice``/``announcer`` a
   voice line; otherwise the source's kind (effect, notification, instrument sample, speech).
3. **Template.** Each kind has a few templates (:data:`TEMPLATES`); one is picked per clip by a hash
   of the clip's path inside its package, so the choice is deterministic and varies across clips
   ("a" becomes "an" before a vowel).
4. **Labels.** The kind plus the words of the file's stem (folder words excluded).

Sources with richer metadata (spoken-word lists, transcripts, drum-kit descriptions, rendered
notes) fill the same template slots from that metadata instead (see :mod:`.sources`).
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

STOPWORDS = frozenset(
    """sound sounds snd sfx wav ogg oga flac data default usr share games game base common commondata
    misc stereo sample samples techs megapack factions faction units unit tilesets tileset
    globalmods mods mod core none the of and music musics voices voice announcer audio""".split()
)
MUSIC_FOLDERS = frozenset({"music", "musics"})
VOICE_FOLDERS = frozenset({"voices", "voice", "announcer"})

TEMPLATES: Mapping[str, Sequence[str]] = {
    "effect": ("the sound of {phrase}", "a sound effect of {phrase}", "{phrase}, a video game sound effect"),
    "voice": ("a character's voice line: {phrase}", "a voice actor saying {phrase}",
              "a video game voice, {phrase}"),
    "music": ("instrumental game music, {phrase}", "a piece of background music: {phrase}",
              "video game music titled {phrase}"),
    "notification": ("a computer notification sound: {phrase}", "a desktop alert sound for {phrase}",
                     "a short {phrase} system sound"),
    "instrument": ("a {phrase} sample", "the sound of a {phrase}", "a {phrase} from a music sample library"),
    "word": ("a person saying the word for {phrase} in {language}", "the {language} word for {phrase}, spoken aloud",
             "someone says {phrase} in {language}"),
    "transcript": ('a woman saying "{phrase}"', 'a recorded telephone prompt: "{phrase}"',
                   'a female voice says: "{phrase}"'),
    "note": ("a {instrument} playing a {loudness}, {height} note ({family})",
             "a {length} {height} note on a {instrument}, a {family} instrument, played {loudness_adverb}",
             "the sound of a {family} instrument: one {loudness} {height} note on a {instrument}"),
    "drum_hit": ("a {instrument} hit from a {kit} drum kit", "a single {loudness} {instrument} drum sound",
                 "the sound of a {instrument}, played {loudness_adverb}"),
    "score": ("{piece} played on a {instrument}", "a {instrument} playing {piece}, {tempo}",
              "the sound of {piece}, performed on a {instrument} in a {register} register"),
    "speech": ("{speaker} saying {phrase} in {language}", "{speaker} says {phrase} in {language}, a synthetic voice",
               "a synthetic {language} voice: {speaker} saying {phrase}"),
    "recorded_speech": ("{speaker} saying {phrase} in {language}", "a recording of {speaker} saying {phrase} in {language}",
                        "{phrase}, spoken in {language} by {speaker}"),
    "digit": ("a person saying the number {phrase}", 'someone says "{phrase}"', "the spoken digit {phrase}"),
    "drum": ("a {phrase} hit from a drum kit", "a single {phrase} drum sound", "the sound of a {phrase}"),
}

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[\s_\-.,+()\[\]'\"/]+")


def split_words(name: str) -> list[str]:
    """Lower-case words of a file or folder name, digits removed."""
    words = []
    for chunk in _SEPARATORS.split(name):
        for word in _CAMEL.split(chunk):
            word = re.sub(r"\d+", "", word).lower()
            if word:
                words.append(word)
    return words


def name_words(
    path: str,
    context: int = 1,
    stopwords: frozenset[str] = frozenset(),
    abbreviations: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """(folder words, stem words) of ``path`` after rule 1."""
    parts = path.strip("/").split("/")
    stem = parts[-1].rsplit(".", 1)[0]
    folders = parts[-1 - context:-1] if context else []
    ignored = STOPWORDS | stopwords
    abbreviations = abbreviations or {}

    def clean(names: Sequence[str]) -> list[str]:
        words = [abbreviations.get(w, w) for n in names for w in split_words(n)]
        return [w for w in words if w not in ignored]

    return clean(folders), clean([stem])


def dedupe(words: Sequence[str]) -> list[str]:
    seen, kept = set(), []
    for word in " ".join(words).split():
        if word not in seen:
            seen.add(word)
            kept.append(word)
    return kept


def kind_of(path: str, default: str) -> str:
    """Rule 2: the caption kind of a file from its folders, else the source's kind."""
    folders = {part.lower() for part in path.split("/")[:-1]}
    if folders & MUSIC_FOLDERS:
        return "music"
    if folders & VOICE_FOLDERS:
        return "voice"
    return default


def stable_choice(options: Sequence, key: str, salt: str = ""):
    """One of ``options``, picked by a stable hash of ``key``: the same on every build and machine.
    Each ``salt`` gives an independent choice for the same key (a voice, a rate, a pitch)."""
    text = f"{salt}\0{key}" if salt else key
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def pick_template(kind: str, key: str) -> str:
    """Rule 3: a template of ``kind`` chosen by a stable hash of ``key``."""
    return stable_choice(TEMPLATES[kind], key)


def _filled(template: str, slots: Mapping[str, str]) -> str:
    # "a" becomes "an" before a vowel, except the spoken letter ("the letter A in English").
    return re.sub(r"(?<!letter )\b([Aa]) (?=[aeiou])", r"\1n ", template.format(**slots))


def caption(kind: str, key: str, **slots: str) -> str:
    """Fill the template picked for ``key`` with ``slots`` (``phrase`` and kind-specific ones)."""
    return _filled(pick_template(kind, key), slots)


def all_captions(kind: str, key: str, **slots: str) -> list[str]:
    """Every template of ``kind`` filled with ``slots``, the one :func:`caption` picks first. For
    sources whose metadata fills the slots exactly (rendered notes), so training can draw any of them."""
    first = pick_template(kind, key)
    return [_filled(template, slots) for template in (first, *(t for t in TEMPLATES[kind] if t != first))]
