"""Licences from a Debian package's ``usr/share/doc/<pkg>/copyright``.

Machine-readable (DEP-5) files give one licence per ``Files:`` stanza. Patterns name paths in the
*source* tree (``share/hedgewars/Data/Sounds/*``, ``etc/samples/x.flac``) while we see *installed*
paths (``usr/share/games/hedgewars/Data/Sounds/x.ogg``), so a pattern also matches when, after
dropping some of its leading folders, it matches the installed path's tail — as long as what is left
is not a bare wildcard (``debian/*`` must never become ``*``). Such loose matching can make an
unrelated stanza match too (``hedgewars/*``, the engine's sources), so the most specific match wins
(most literal characters in the part of the pattern that matched); among equals the last stanza
wins, as the format specifies.

Free-form copyright files get the package's main licence: the first licence named after the first
``License`` heading, recognised by a few phrases (GPL/LGPL version and "or later", MIT, CC).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

DEP5_FORMAT = re.compile(r"^Format:\s*\S*copyright-format", re.IGNORECASE)
UNKNOWN = "unknown"
# Material the corpus leaves out because it cannot be combined with the rest under the licence of
# the model trained on it (clapkit-small's weights are GPL-3.0-or-later: docs/models/clapkit-small.md).
EXCLUDED_LICENCES = {
    "GPL-2": "GPL-2.0-only cannot be combined with the corpus's GPL-3 material",
    "GFDL-1.3": "GFDL-1.3 is not compatible with the GPL",
    UNKNOWN: "no licence found in the package's copyright file",
}


@dataclass(frozen=True)
class Stanza:
    patterns: tuple[str, ...]
    licence: str


@dataclass(frozen=True)
class CopyrightFile:
    """A parsed copyright file: DEP-5 stanzas (empty when free-form) and the main licence."""

    stanzas: tuple[Stanza, ...]
    main_licence: str

    def licence_for(self, installed_path: str) -> str:
        """The licence of ``installed_path`` (relative to the package root, e.g. ``usr/share/...``)."""
        best_score, licence = -1, self.main_licence
        for stanza in self.stanzas:
            score = max((_match_score(p, installed_path) for p in stanza.patterns), default=-1)
            if score >= best_score and score >= 0:
                best_score, licence = score, stanza.licence
        return licence


def _is_bare_wildcard(parts: list[str]) -> bool:
    return all(set(part) <= set("*?") for part in parts)


def _match_score(pattern: str, path: str) -> int:
    """Literal characters of the (possibly shortened) pattern that matches ``path``; -1: no match."""
    pattern_parts = pattern.strip("/").split("/")
    path_parts = path.strip("/").split("/")
    tails = ["/".join(path_parts[i:]) for i in range(len(path_parts))]
    for drop in range(len(pattern_parts)):
        rest = pattern_parts[drop:]
        if drop and _is_bare_wildcard(rest):
            break
        rest_pattern = "/".join(rest)
        # DEP-5 wildcards cross folder boundaries, which fnmatch's "*" does too.
        if any(fnmatchcase(tail, rest_pattern) for tail in tails):
            return len(re.sub(r"[*?/]", "", rest_pattern))
    return -1


def _paragraphs(text: str) -> list[dict[str, str]]:
    """RFC-822 style paragraphs: field name -> value (continuation lines joined)."""
    paragraphs, current, key = [], {}, None
    for line in text.splitlines():
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            current[key] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def _short_name(value: str) -> str:
    return value.split("\n", 1)[0].strip() or UNKNOWN


LICENCE_PHRASES = (
    (re.compile(r"\bMIT licen[cs]e|\(MIT\b", re.I), "MIT"),  # "(MIT, parts PD or CC0)" names MIT first
    (re.compile(r"GNU (?:Lesser|Library) General Public License,? (?:as published [^.]*?)?version ([\d.]+)", re.I), "LGPL-{}"),
    (re.compile(r"GNU General Public License,? (?:as published [^.]*?)?(?:version|v) ?([\d.]+)", re.I), "GPL-{}"),
    (re.compile(r"Creative Commons Attribution[- ]Share[- ]?Alike,? (?:version )?([\d.]+)", re.I), "CC-BY-SA-{}"),
    (re.compile(r"Creative Commons Attribution,? (?:version )?([\d.]+)", re.I), "CC-BY-{}"),
    (re.compile(r"Creative Commons (?:Zero|0)|CC0", re.I), "CC0-1.0"),
    (re.compile(r"public domain", re.I), "public-domain"),
)


def guess_licence(text: str) -> str:
    """The first licence named in free-form licence text, as a short SPDX-like name."""
    text = " ".join(text.split())
    found = []
    for phrase, name in LICENCE_PHRASES:
        match = phrase.search(text)
        if match:
            licence = name.format(*match.groups())
            if "GPL" in licence and re.search(r"any later version", text[match.start():match.start() + 400], re.I):
                licence += "+"
            found.append((match.start(), licence))
    return min(found)[1] if found else UNKNOWN


def parse_copyright(text: str) -> CopyrightFile:
    """Parse a Debian copyright file (DEP-5 or free-form)."""
    first_line = text.lstrip().split("\n", 1)[0]
    if DEP5_FORMAT.match(first_line):
        stanzas = tuple(
            Stanza(tuple(p["files"].split()), _short_name(p.get("license", "")))
            for p in _paragraphs(text)
            if "files" in p
        )
        star = [s.licence for s in stanzas if "*" in s.patterns]
        main = star[0] if star else (stanzas[0].licence if stanzas else UNKNOWN)
        return CopyrightFile(stanzas, main)
    heading = re.search(r"^\s*Licen[cs]e\b:?", text, re.I | re.M)
    section = text[heading.start():heading.start() + 1500] if heading else text
    return CopyrightFile((), guess_licence(section))


def read_package_copyright(root: Path, package: str) -> CopyrightFile:
    """Parse ``usr/share/doc/<package>/copyright`` under an extracted package ``root``."""
    path = root / "usr" / "share" / "doc" / package / "copyright"
    if not path.is_file():
        return CopyrightFile((), UNKNOWN)
    return parse_copyright(path.read_text(encoding="utf-8", errors="replace"))
