"""Synthetic speech items: every utterance in several voices, captions naming speaker, words and
language, labels for the tasks a manifest can feed (language, gender, words)."""
from __future__ import annotations

from collections import Counter

from clapkit.data.offline import speech
from clapkit.data.offline.licences import CopyrightFile


def espeak_tree(root):
    variants = root / "usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v"
    variants.mkdir(parents=True)
    (variants / "m1").write_text("name male1\ngender male 70\n")
    (variants / "f3").write_text("name female3\ngender female\n")
    (variants / "klatt").write_text("name klatt\n")
    return root


def test_english_numbers():
    assert [speech.english_number(n) for n in (0, 7, 13, 20, 42, 90, 100)] == [
        "zero", "seven", "thirteen", "twenty", "forty-two", "ninety", "one hundred"]


def test_every_utterance_in_every_rendition(tmp_path):
    items, skipped = speech.speech_items(espeak_tree(tmp_path), CopyrightFile((), "GPL-3+"))
    assert skipped == []
    assert len(items) == sum(u.renditions for u in speech.utterances())
    assert len({i.name for i in items}) == len(items)
    assert {i.licence for i in items} == {"GPL-3+"}
    assert {i.source.data for i in items} == {str(tmp_path / "usr/lib/x86_64-linux-gnu")}
    renditions = Counter((i.source.text, i.source.voice, i.source.speed, i.source.pitch) for i in items)
    assert len(renditions) > 0.95 * len(items)  # voices, rates and pitches vary across renditions


def test_captions_and_labels_follow_the_voice(tmp_path):
    items, _ = speech.speech_items(espeak_tree(tmp_path), CopyrightFile((), "GPL-3+"))
    seven = [i for i in items if i.source.text == "seven"]
    assert len(seven) == 150
    for item in seven:
        gender = item.extra["gender"]
        speaker = {"male": "a man", "female": "a woman", "": "a person"}[gender]
        assert speaker in item.captions[0] and "the number seven" in item.captions[0]
        assert item.labels == ["speech", "English", *([gender] if gender else []), "seven"]
        assert item.source.voice.split("+")[0] in speech.ENGLISH
    german = [i for i in items if i.extra["language"] == "German"]
    assert german and all(i.source.voice.startswith("de+") and "German" in i.captions[0] for i in german)


def test_items_are_the_same_on_every_build(tmp_path):
    first, _ = speech.speech_items(espeak_tree(tmp_path / "a"), CopyrightFile((), "GPL-3+"))
    second, _ = speech.speech_items(espeak_tree(tmp_path / "b"), CopyrightFile((), "GPL-3+"))
    assert [(i.name, i.source.identity(), i.captions) for i in first] == [
        (i.name, i.source.identity(), i.captions) for i in second]


def test_further_renditions_of_chosen_utterances_are_new_clips(tmp_path):
    """A held-out set: the digits' renditions after the corpus's, drawn by the same rule."""
    root, licence = espeak_tree(tmp_path), CopyrightFile((), "GPL-3+")
    seven = speech.Utterance("seven", "the number seven", "number", speech.ENGLISH, 150)
    corpus, _ = speech.speech_items(root, licence, [seven])
    held_out, _ = speech.speech_items(root, licence, [speech.Utterance(*vars(seven).values())], first_rendition=150)
    assert [i.name for i in corpus] == [i.name for i in speech.speech_items(root, licence)[0] if i.source.text == "seven"]
    assert [i.name for i in held_out] == [f"espeak-ng#number=seven#{n}" for n in range(150, 300)]
    # three fake variants give 360 voice, rate and pitch draws, so some repeat the corpus's
    assert len({i.source.identity() for i in held_out} - {i.source.identity() for i in corpus}) > 50


def test_flite_speaks_the_english_utterances_in_its_four_voices():
    items = speech.flite_items("CMU-Flite (BSD-style)")
    english = [u for u in speech.utterances() if u.languages == speech.ENGLISH]
    assert {i.source.text for i in items} == {u.text for u in english}
    assert len([i for i in items if i.source.text == "seven"]) == 150 // speech.SECOND_ENGINE_SHARE
    assert {i.source.voice for i in items} == set(speech.FLITE_VOICES)
    for item in items:
        gender = speech.FLITE_VOICES[item.source.voice]
        assert item.captions[0].startswith(speech.SPEAKERS[gender]) or f"{speech.SPEAKERS[gender]} saying" in item.captions[0]
        assert item.labels == ["speech", "English", gender, item.source.text.rstrip(".")]
        assert item.source.pitch in speech.PITCHES[gender] and item.licence == "CMU-Flite (BSD-style)"
    assert [i.source.identity() for i in items] == [i.source.identity() for i in speech.flite_items("x")]


def test_festival_speaks_the_english_utterances_in_its_two_voices_under_their_licences():
    licences = {"ked_diphone": "CSTR", "cmu_us_slt_arctic_hts": "EST-2003"}
    items = speech.festival_items(licences)
    english = [u for u in speech.utterances() if u.languages == speech.ENGLISH]
    assert {i.source.text for i in items} == {u.text for u in english}
    assert len([i for i in items if i.source.text == "seven"]) == 150 // speech.SECOND_ENGINE_SHARE
    assert {i.source.voice for i in items} == set(speech.FESTIVAL_GENDERS)
    for item in items:
        gender = speech.FESTIVAL_GENDERS[item.source.voice]
        assert item.labels == ["speech", "English", gender, item.source.text.rstrip(".")]
        assert item.licence == licences[item.source.voice] and item.source.stretch in speech.STRETCHES
        assert item.source.pitch in (speech.PITCHES[gender] if item.source.voice == "ked_diphone" else (0,))
    assert len({i.name for i in items} & {i.name for i in speech.flite_items("x")}) == 0
    assert [i.source.identity() for i in items] == [i.source.identity() for i in speech.festival_items(licences)]
