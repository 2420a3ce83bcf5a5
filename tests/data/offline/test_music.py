"""Music from music21's corpus: ABC files split into tunes, tune types from titles, excerpts cut,
scaled and transposed, and captions that name the piece and the instrument."""
from __future__ import annotations

import pytest

from clapkit.data.offline import music

ABC = """%% a collection header
X:1
T:7th Regiment -- Reel
M:2/4
L:1/8
K:D
DFAd fedc|d2 d2 d4|

X:2
T:The Fun at Donnybrook
M:6/8
L:1/8
K:G
GAB c2d|e3 d3|
"""


def test_abc_files_split_into_titled_tunes():
    tunes = music.abc_tunes(ABC)
    assert [title for title, _ in tunes] == ["7th Regiment -- Reel", "The Fun at Donnybrook"]
    assert all(text.startswith("%% a collection header") for _, text in tunes)


@pytest.mark.parametrize("title, kind, name", [
    ("7th Regiment -- Reel", "reel", "7th Regiment"),
    ("A'WILLIE, WE HAVE MISS'D YOU -- STRATHSPEY", "strathspey", "A'WILLIE, WE HAVE MISS'D YOU"),
    ("Quick Step. 25th Regt.", "quick step", "Quick Step. 25th Regt"),
    ("The Enchanted Valley", "tune", "The Enchanted Valley"),
])
def test_tune_type_from_title(title, kind, name):
    assert music.tune_type(title) == (kind, name)


def test_excerpt_keeps_the_window_scales_tempo_and_transposes():
    notes = [(0.0, 1.0, 60, 90), (5.0, 1.0, 62, 90), (11.0, 1.0, 64, 90), (20.0, 1.0, 65, 90)]
    fast = music.excerpt(notes, start=5.0, tempo=1.25, shift=12)
    # 10 s at 1.25x covers 12.5 s of the score: the notes at 5 and 11 s, moved up an octave
    assert fast == ((0.0, 0.8, 74, 90), (4.8, 0.8, 76, 90))
    assert music.excerpt([(0.0, 1.0, 100, 90)], 0.0, 1.0, 12) == ((0.0, 1.0, 108, 90),)  # kept on the keyboard


def test_scores_parse_into_timed_notes():
    pytest.importorskip("music21")
    import music21

    _, text = music.abc_tunes(ABC)[0]
    notes = music.score_notes(music21.converter.parse(text, format="abc"), default_qpm=120.0)
    assert len(notes) == 11 and notes[0][2] == 62  # D4
    assert notes[0][0] == 0.0 and notes[1][0] == pytest.approx(0.25)  # eighth notes at 120 qpm


def test_items_name_piece_instrument_and_licence(tmp_path):
    pytest.importorskip("music21")
    corpus = tmp_path / "corpus"
    (corpus / "ryansMammoth").mkdir(parents=True)
    (corpus / "ryansMammoth" / "tunes.abc").write_text(ABC)
    items, skipped = music.music_items(corpus, ("ryansMammoth",), tmp_path / "FluidR3_GM.sf2", "MIT")
    assert skipped == [] and len(items) == 4  # two tunes, two renditions each
    first = items[0]
    assert "7th Regiment" in first.captions[0] and first.extra["instrument"] in first.captions[0]
    assert first.labels[:3] == ["music", "ryansMammoth", "reel"]
    assert first.licence.startswith("public-domain score") and "FluidR3_GM.sf2 (MIT)" in first.licence
    assert items[0].source != items[1].source  # the second rendition differs (start, instrument, tempo)
    again, _ = music.music_items(corpus, ("ryansMammoth",), tmp_path / "FluidR3_GM.sf2", "MIT")
    assert [i.source for i in again] == [i.source for i in items]
