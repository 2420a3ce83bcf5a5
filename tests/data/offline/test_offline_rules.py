"""Caption, licence and source rules of the offline corpus builder (no network, no audio)."""

from __future__ import annotations

import pytest

from clapkit.cli import main
from clapkit.data.offline.archive import AptArchive
from clapkit.data.offline.captions import (
    TEMPLATES,
    all_captions,
    caption,
    kind_of,
    name_words,
    pick_template,
    split_words,
)
from clapkit.data.offline.gm import GM_FAMILIES, GM_PROGRAMS, note_grid
from clapkit.data.offline.licences import guess_licence, parse_copyright
from clapkit.data.offline.sources import (
    EVAL_SOURCES,
    FESTIVAL_DIPHONE_LICENCE,
    FLITE_LICENCE,
    REAL_SPEECH,
    RESERVED,
    SOURCES,
    ReservedPackageError,
    default_sources,
    read_asterisk_language,
    read_festival,
    read_flite,
    read_klettres,
    read_spoken_numbers,
    read_training_notes,
    resolve_sources,
)

DEP5 = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Source: https://example.org/

Files: *
Copyright: 2004 Someone
License: GPL-2

Files: share/hedgewars/Data/Sounds/*
Copyright: 2005 Someone
License: GFDL-1.3

Files: share/hedgewars/Data/Sounds/Droplet*.ogg
Copyright: saugox
License: CC-BY-SA-3.0
Comment: a comment
 spanning lines

Files: hedgewars/*
Copyright: 2004 Someone
License: GPL-2

Files: debian/*
Copyright: 2010 Packager
License: MIT

Files: stereo/bell.oga
 stereo/complete.oga
License: CC-BY-3.0
 Free text of the licence.
"""


@pytest.mark.parametrize(
    ("path", "licence"),
    [
        ("usr/share/games/hedgewars/Data/Sounds/voices/Robot/Hmm.ogg", "GFDL-1.3"),
        ("usr/share/games/hedgewars/Data/Sounds/Droplet2.ogg", "CC-BY-SA-3.0"),
        ("usr/share/games/hedgewars/Data/Music/Fruit.ogg", "GPL-2"),
        ("usr/share/sounds/freedesktop/stereo/complete.oga", "CC-BY-3.0"),
        ("usr/share/sounds/freedesktop/stereo/other.oga", "GPL-2"),
    ],
)
def test_dep5_licence_of_installed_path(path, licence):
    parsed = parse_copyright(DEP5)
    assert parsed.main_licence == "GPL-2"
    assert parsed.licence_for(path) == licence


def test_dep5_pattern_never_shrinks_to_a_bare_wildcard():
    # "debian/*" (MIT) must not match everything once "debian/" is dropped.
    assert parse_copyright(DEP5).licence_for("usr/share/doc/x/README") == "GPL-2"


def test_free_form_copyright_gives_the_first_named_licence():
    text = """This package was debianized by someone.

Copyright: 2008 someone

License:

  "I hereby release Fluid under the MIT license, as described in COPYING."

The Debian packaging is licensed under the GPL; either version 2 of the License.
"""
    parsed = parse_copyright(text)
    assert parsed.stanzas == ()
    assert parsed.licence_for("usr/share/sounds/sf2/x.sf2") == "MIT"


@pytest.mark.parametrize(
    ("text", "licence"),
    [
        (
            "under the terms of the GNU General Public License as published by the Free Software Foundation; "
            "either version 2 of the License, or (at your option) any later version.",
            "GPL-2+",
        ),
        ("the GNU General Public License version 2", "GPL-2"),
        ("Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0).", "CC-BY-SA-4.0"),
        ("This work is licensed under the Creative Commons 0 License.", "CC0-1.0"),
        ("MuseScore_General SoundFont (MIT, parts PD or CC0):", "MIT"),
        ("no idea", "unknown"),
    ],
)
def test_guess_licence(text, licence):
    assert guess_licence(text) == licence


def test_fsdd_readme_licence(shared_dir):
    readme = (shared_dir / "data" / "fsdd" / "README.md").read_text()
    line = next(line for line in readme.splitlines() if "Licence" in line)
    assert guess_licence(line) == "CC-BY-SA-4.0"


def test_split_words_handles_case_digits_and_separators():
    assert split_words("RocketTakeoff1") == ["rocket", "takeoff"]
    assert split_words("stickfighter_attack11") == ["stickfighter", "attack"]
    assert split_words("Oxygen-Im-New-Mail") == ["oxygen", "im", "new", "mail"]
    assert split_words("default_ice_footstep.3") == ["default", "ice", "footstep"]


def test_name_words_uses_folders_stopwords_and_abbreviations():
    folders, stem = name_words(
        "usr/share/games/megaglest/techs/megapack/factions/persian/units/archer/sounds/archer_ack14.wav",
        context=2,
        abbreviations={"ack": "acknowledgement"},
    )
    assert folders == ["archer"]  # "sounds" is a stop-word
    assert stem == ["archer", "acknowledgement"]


def test_kind_from_folders():
    assert kind_of("usr/share/games/x/Data/Music/Fruit.ogg", "effect") == "music"
    assert kind_of("usr/share/games/x/Data/Sounds/voices/Robot/Hmm.ogg", "effect") == "voice"
    assert kind_of("usr/share/games/x/sounds/boom.wav", "effect") == "effect"


def test_template_choice_is_deterministic_and_varied():
    keys = [f"file{i}.ogg" for i in range(60)]
    picks = [pick_template("effect", k) for k in keys]
    assert picks == [pick_template("effect", k) for k in keys]
    assert set(picks) == set(TEMPLATES["effect"])


def test_caption_fills_slots_and_fixes_article():
    text = caption(
        "note", "k", instrument="oboe", family="reed", loudness="loud", height="high", length="long",
        loudness_adverb="loudly"
    )
    assert "oboe" in text and "reed" in text and "a oboe" not in text
    assert "{" not in text


def test_a_spoken_letter_keeps_its_name_before_a_vowel():
    text = caption("recorded_speech", "k", phrase="the letter A", language="English", speaker="a person")
    assert "the letter A in English" in text or "the letter A, spoken" in text
    assert caption("effect", "k", phrase="a apple").count("an apple") == 1


def test_all_captions_fill_every_template_with_the_picked_one_first():
    slots = dict(instrument="oboe", family="reed", loudness="loud", height="high", length="long",
                 loudness_adverb="loudly")
    texts = all_captions("note", "k", **slots)
    assert texts[0] == caption("note", "k", **slots)
    assert len(set(texts)) == len(TEMPLATES["note"])
    assert all("reed" in t and "an oboe" in t and "{" not in t for t in texts)


def test_training_notes_read_an_sf3_soundfont_with_every_caption(tmp_path):
    (tmp_path / "usr/share/sounds/sf3").mkdir(parents=True)
    (tmp_path / "usr/share/sounds/sf3/General.sf3").write_bytes(b"")
    items, skipped = read_training_notes(tmp_path, SOURCES["musescore-general-soundfont-small"],
                                         parse_copyright("License: (MIT, parts PD or CC0)"))
    assert not skipped and len(items) == len(note_grid()) + 8 * 47 * 2  # notes, then 8 kits x 47 keys x 2
    assert {i.licence for i in items} == {"MIT"}
    assert all(i.source.soundfont.endswith("General.sf3") and len(i.captions) == 3 for i in items)
    with pytest.raises(FileNotFoundError, match="no SoundFont"):
        read_training_notes(tmp_path / "empty", SOURCES["csound-soundfont"], parse_copyright(""))


def test_note_grid_covers_melodic_programs():
    grid = note_grid()
    assert len(GM_PROGRAMS) == 120 and len(GM_FAMILIES) == 15
    assert len(grid) == 120 * 3 * 2 * 2
    assert {n.family for n in grid} == set(GM_FAMILIES)
    assert all(0 <= n.pitch <= 127 for n in grid)
    violin = [n for n in grid if n.instrument == "violin"]
    assert {n.family for n in violin} == {"strings"}


def test_splits_are_by_package_and_eval_sets_are_disjoint():
    assert {s.split for s in SOURCES.values()} == {"train", "val", "test"}
    assert not set(SOURCES) & set(EVAL_SOURCES)
    optional = ["festival", *(s.package for s in REAL_SPEECH)]
    assert list(SOURCES)[-3 - len(optional):] == ["flite", "csound-soundfont", "musescore-general-soundfont-small",
                                                  *optional]  # manifest order
    assert set(default_sources()) == set(SOURCES) - set(optional)  # optional: built with --add-sources
    music = [s for s in SOURCES.values() if s.pypi == "music21"]
    assert len({s.split for s in music}) == 2 and not set(music[0].include) & set(music[1].include)
    assert not RESERVED & (set(SOURCES) | set(EVAL_SOURCES))
    soundfonts = {"fluid-soundfont-gm"} & set(SOURCES), {"timgm6mb-soundfont"} & set(EVAL_SOURCES)
    assert all(soundfonts)


@pytest.mark.parametrize("package", sorted(RESERVED))
def test_reserved_packages_are_refused(package, tmp_path, capsys):
    with pytest.raises(ReservedPackageError, match=package):
        resolve_sources(["sound-icons", package])
    with pytest.raises(ReservedPackageError):
        AptArchive().lookup([package])
    with pytest.raises(ReservedPackageError):
        AptArchive().download(package, tmp_path)
    assert main(["data", "build", "offline", "--out", str(tmp_path / "c"), "--sources", package]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and package in err and "reserved" in err
    assert not (tmp_path / "c").exists()


def test_unknown_source_is_a_one_line_user_error(tmp_path, capsys):
    assert main(["data", "build", "offline", "--out", str(tmp_path), "--sources", "no-such-package"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no-such-package" in err


def test_flite_licence_is_read_from_its_copyright_text(tmp_path):
    doc = tmp_path / "usr/share/doc/flite"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: config.sub\nLicense: GPL-2\n\nCarnegie Mellon University\n"
                                   "License:\n Permission is hereby granted, free of charge, to use and\n distribute "
                                   "this software and its documentation without restriction\n")
    items, _ = read_flite(tmp_path, SOURCES["flite"], parse_copyright(""))
    assert items and {i.licence for i in items} == {FLITE_LICENCE}
    (doc / "copyright").write_text("Files: *\nLicense: GPL-2\n")
    with pytest.raises(ValueError, match="licence is unknown"):
        read_flite(tmp_path, SOURCES["flite"], parse_copyright(""))


def test_festival_clips_carry_each_voice_package_licence(tmp_path):
    ked = tmp_path / "usr/share/doc/festvox-kdlpc16k"
    hts = tmp_path / "usr/share/doc/festvox-us-slt-hts"
    ked.mkdir(parents=True)
    hts.mkdir(parents=True)
    (ked / "copyright").write_text("Centre for Speech Technology Research\n University of Edinburgh\n Permission is "
                                   "hereby granted, free of charge, to use and\n distribute this software\n")
    (hts / "copyright").write_text("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
                                   "Files:\n lib/voices/us/cmu_us_slt_arctic_hts/README\nLicense: EST-2003\n\n"
                                   "Files: debian/*\nLicense: BSD-3-clause\n")
    items, _ = read_festival(tmp_path, SOURCES["festival"], parse_copyright(""))
    assert {(i.source.voice, i.licence) for i in items} == {("ked_diphone", FESTIVAL_DIPHONE_LICENCE),
                                                            ("cmu_us_slt_arctic_hts", "EST-2003")}
    (ked / "copyright").write_text("Files: *\nLicense: GPL-2\n")
    with pytest.raises(ValueError, match="festvox-kdlpc16k.*licence is unknown"):
        read_festival(tmp_path, SOURCES["festival"], parse_copyright(""))


def test_add_sources_builds_optional_sources_after_the_defaults_and_with_the_eval_sets(monkeypatch, tmp_path):
    import clapkit.data.offline as offline

    seen = {}

    def fake_build(options):
        seen.update(sources=options.sources, eval_sets=options.eval_sets)
        return {"sources": {}, "splits": {}, "wall_seconds": 0.0}

    monkeypatch.setattr(offline, "build", fake_build)
    assert main(["data", "build", "offline", "--out", str(tmp_path), "--add-sources", "festival"]) == 0
    assert seen == {"sources": [*default_sources(), "festival"], "eval_sets": True}
    assert main(["data", "build", "offline", "--out", str(tmp_path), "--sources", "sound-icons",
                 "--add-sources", "festival"]) == 0
    assert seen == {"sources": ["sound-icons", "festival"], "eval_sets": False}


def _touch(root, *paths):
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"")


GPL_2_PLUS = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n"

ASTERISK_IT_COPYRIGHT = """\
Format: http://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2003-2010, Allison Smith
License: CC-BY-SA-3.0

Files: it-*
Copyright: 2012 Carlo Flora
License: CC-BY-3.0
"""


def test_asterisk_prompts_in_another_language_keep_transcript_speaker_and_licence(tmp_path):
    import gzip

    voice = "usr/share/asterisk/sounds/it_IT_m_Carlo"
    _touch(tmp_path, f"{voice}/digits/7.wav", f"{voice}/digits/h-14.wav", f"{voice}/vm-first.wav",
           f"{voice}/beep.wav", f"{voice}/untranscribed.wav")
    doc = tmp_path / "usr/share/doc/asterisk-core-sounds-it"
    doc.mkdir(parents=True)
    with gzip.open(doc / "core-sounds-it.txt.gz", "wt", encoding="utf-8") as f:
        f.write("; comment: ignored\ndigits/7: otto\ndigits/h-14: quattordicesimo\nvm-first: primo\nbeep: [beep]\n")
    spec = SOURCES["asterisk-core-sounds-it-wav"]
    items, skipped = read_asterisk_language(tmp_path, spec, parse_copyright(ASTERISK_IT_COPYRIGHT))
    captions = {i.name.rsplit("/", 1)[1]: i.captions[0] for i in items}
    assert "the number 7" in captions["7.wav"] and "otto" not in captions["7.wav"]  # upstream's digit text is wrong
    assert '"quattordicesimo"' in captions["h-14.wav"] and '"primo"' in captions["vm-first.wav"]
    assert all("a man" in captions[k] and "Italian" in captions[k] for k in ("7.wav", "h-14.wav", "vm-first.wav"))
    assert "beep" in captions["beep.wav"] and "a man" not in captions["beep.wav"]  # a tone, not speech
    assert {i.licence for i in items} == {"CC-BY-3.0"}  # the "it-*" stanza, not Allison's "*"
    assert skipped == [(f"{voice}/untranscribed.wav", "no transcript")]


def test_klettres_letters_and_syllables_are_captioned_per_language(tmp_path):
    _touch(tmp_path, "usr/share/klettres/en_GB/alpha/a.ogg", "usr/share/klettres/hu/syllab/26-pek.ogg",
           "usr/share/klettres/pics/a.png")
    items, skipped = read_klettres(tmp_path, SOURCES["klettres-data"], parse_copyright(GPL_2_PLUS))
    assert [(i.extra["text"], i.labels) for i in items] == [("a", ["speech", "English"]),
                                                            ("pek", ["speech", "Hungarian"])]
    assert "the letter A" in items[0].captions[0] and '"pek"' in items[1].captions[0]
    assert not skipped and {i.licence for i in items} == {"GPL-2+"}


def test_spoken_numbers_are_read_from_file_names_and_other_sounds_skipped(tmp_path):
    wav = "usr/share/games/csmash/wav"
    _touch(tmp_path, f"{wav}/seven.wav", f"{wav}/twenty.wav", f"{wav}/racket.wav")
    items, skipped = read_spoken_numbers(tmp_path, SOURCES["csmash-data"], parse_copyright(GPL_2_PLUS))
    assert [(i.extra["number"], "the number " + i.extra["word"] in i.captions[0]) for i in items] == [
        (7, True), (20, True)]
    assert all("English" in i.captions[0] for i in items)
    assert skipped == [(f"{wav}/racket.wav", "not a spoken number")]
