"""Adapters of the single-label evaluation sets, on tiny fake copies of their official layouts."""

from __future__ import annotations

import json

import pytest
from test_adapters_common import build, by_name, skipped_lines, write_audio, write_csv

from clapkit.data.adapters import DatasetError
from clapkit.data.adapters.esc50 import ACTIONS

ESC50_HEADER = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]


def fake_esc50(root):
    rows = [
        ["1-100032-A-0.wav", 1, 0, "dog", "True", 100032, "A"],
        ["2-100038-A-14.wav", 2, 14, "chirping_birds", "False", 100038, "A"],
        ["5-9032-A-0.wav", 5, 0, "dog", "True", 9032, "A"],
    ]
    write_csv(root / "meta" / "esc50.csv", ESC50_HEADER, rows)
    for row in rows:
        write_audio(root / "audio" / row[0], sample_rate=44100)
    return rows


def test_esc50(tmp_path):
    fake_esc50(tmp_path / "ESC-50")
    clips, _ = build("esc50", tmp_path / "ESC-50", tmp_path)
    got = by_name(clips)
    assert len(clips) == 3
    assert got["2-100038-A-14.wav"].labels == ["chirping_birds"] and got["2-100038-A-14.wav"].split == "fold2"
    assert got["5-9032-A-0.wav"].split == "fold5" and got["5-9032-A-0.wav"].extra["esc10"] is True
    assert got["1-100032-A-0.wav"].licence == "CC-BY-NC-3.0" and got["1-100032-A-0.wav"].sample_rate == 44100


def test_esc50_malformed_csv(tmp_path):
    root = tmp_path / "ESC-50"
    write_csv(root / "meta" / "esc50.csv", [h for h in ESC50_HEADER if h != "fold"], [["a.wav", 0, "dog", "T", 1, "A"]])
    with pytest.raises(DatasetError, match=r"ESC-50/meta/esc50\.csv: missing column 'fold'"):
        build("esc50", root, tmp_path)
    write_csv(root / "meta" / "esc50.csv", ESC50_HEADER, [["a.wav", "one", 0, "dog", "True", 1, "A"]])
    with pytest.raises(DatasetError, match=r"esc50\.csv:2: column 'fold' is not an integer: 'one'"):
        build("esc50", root, tmp_path)


def test_esc50_actions(tmp_path):
    root = tmp_path / "ESC-50"
    fake_esc50(root)
    ratings = {
        "1-100032-A-0.wav": {"calling": 3.3, "wailing": 2.0, "exhaling": 1.0},
        "2-100038-A-14.wav": {"singing": 2.0},
        "5-9032-A-0.wav": {},
    }
    rows = [[name, name[0], 0, "x", *[r.get(a, 0.0) for a in ACTIONS]] for name, r in ratings.items()]
    write_csv(
        root / "meta" / "actionvector_one_per_audiofile.csv", ["filename", "fold", "target", "category", *ACTIONS], rows
    )
    clips, _ = build("esc50_actions", root, tmp_path)
    got = by_name(clips)
    assert got["1-100032-A-0.wav"].labels == ["calling", "wailing"]
    assert got["2-100038-A-14.wav"].labels == ["singing"] and got["5-9032-A-0.wav"].labels == []
    assert got["1-100032-A-0.wav"].extra["action_ratings"]["exhaling"] == 1.0
    clips, _ = build("esc50_actions", root, tmp_path, threshold=3.0)
    assert by_name(clips)["1-100032-A-0.wav"].labels == ["calling"]


def test_urbansound8k(tmp_path):
    root = tmp_path / "UrbanSound8K"
    header = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
    rows = [
        ["100032-3-0-0.wav", 100032, 0.0, 0.317, 1, 5, 3, "dog_bark"],
        ["100263-2-0-117.wav", 100263, 58.5, 62.5, 1, 10, 2, "children_playing"],
    ]
    write_csv(root / "metadata" / "UrbanSound8K.csv", header, rows)
    write_audio(root / "audio" / "fold5" / rows[0][0])
    write_audio(root / "audio" / "fold10" / rows[1][0])
    clips, _ = build("urbansound8k", root, tmp_path)
    got = by_name(clips)
    assert got["100032-3-0-0.wav"].labels == ["dog_bark"] and got["100032-3-0-0.wav"].split == "fold5"
    assert got["100263-2-0-117.wav"].split == "fold10" and got["100263-2-0-117.wav"].extra["classID"] == 2


def test_gtzan_genres_skips_corrupt_file(tmp_path):
    root = tmp_path / "gtzan"
    from clapkit.data.adapters.folders import GTZAN_GENRES

    for genre in GTZAN_GENRES:
        write_audio(root / "genres_original" / genre / f"{genre}.00000.wav", sample_rate=22050)
    (root / "genres_original" / "jazz" / "jazz.00054.wav").write_bytes(b"not audio")
    clips, out = build("gtzan_genres", root, tmp_path)
    assert len(clips) == 10
    assert by_name(clips)["metal.00000.wav"].labels == ["metal"]
    assert len(skipped_lines(out)) == 1 and "jazz.00054.wav: unreadable audio" in skipped_lines(out)[0]


def test_gtzan_music_speech(tmp_path):
    root = tmp_path / "gtzan_ms"
    write_audio(root / "music_speech" / "music_wav" / "bagpipe.wav")
    write_audio(root / "music_speech" / "speech_wav" / "comedy.wav")
    write_audio(root / "music_speech" / "speech_wav" / "god.wav")
    clips, _ = build("gtzan_music_speech", root, tmp_path)
    assert {c.labels[0] for c in clips} == {"music", "speech"} and len(clips) == 3
    assert by_name(clips)["comedy.wav"].labels == ["speech"]


def test_beijing_opera(tmp_path):
    root = tmp_path / "BeijingOpera"
    for name in ("Bangu", "Daluo", "Naobo", "Xiaoluo"):
        write_audio(root / "audio" / name / f"{name.lower()}-1.wav")
    clips, _ = build("beijing_opera", root, tmp_path)
    assert sorted(c.labels[0] for c in clips) == ["bangu", "daluo", "naobo", "xiaoluo"]
    (root / "audio" / "Naobo" / "naobo-1.wav").unlink()
    (root / "audio" / "Naobo").rmdir()
    with pytest.raises(DatasetError, match="no folder for instrument"):
        build("beijing_opera", root, tmp_path)


def test_sesa_reports_unknown_prefix(tmp_path):
    root = tmp_path / "SESA"
    for split, name in [
        ("train", "casual_000.wav"),
        ("train", "gunshot_001.wav"),
        ("test", "explosion_000.wav"),
        ("test", "siren_010.wav"),
        ("test", "mystery_000.wav"),
    ]:
        write_audio(root / "SESA" / split / name, sample_rate=16000)
    clips, out = build("sesa", root, tmp_path)
    got = by_name(clips)
    assert got["gunshot_001.wav"].labels == ["Gunshot"] and got["gunshot_001.wav"].split == "train"
    assert got["siren_010.wav"].labels == ["Siren"] and got["siren_010.wav"].split == "test"
    assert len(clips) == 4 and "mystery_000.wav: cannot tell the class" in skipped_lines(out)[0]


def test_libricount(tmp_path):
    root = tmp_path / "LibriCount10-0dB"
    write_audio(root / "test" / "0_0ee0b5c3.wav", sample_rate=16000)
    write_audio(root / "test" / "10_1a2b3c4d.wav", sample_rate=16000)
    (root / "test" / "10_1a2b3c4d.json").write_text("[]")
    clips, _ = build("libricount", root, tmp_path)
    assert sorted(c.labels[0] for c in clips) == ["0", "10"] and {c.split for c in clips} == {"test"}


def test_tut2017(tmp_path):
    dev = tmp_path / "tut" / "TUT-acoustic-scenes-2017-development"
    meta = [["audio/a001_0_10.wav", "residential_area", "a001"], ["audio/b020_90_100.wav", "cafe/restaurant", "b020"]]
    write_csv(dev / "meta.txt", None, meta, delimiter="\t")
    write_csv(
        dev / "evaluation_setup" / "fold1_evaluate.txt", None, [["audio/b020_90_100.wav", "cafe/restaurant"]], "\t"
    )
    write_csv(
        dev / "evaluation_setup" / "fold3_evaluate.txt", None, [["audio/a001_0_10.wav", "residential_area"]], "\t"
    )
    for k in (2, 4):
        write_csv(dev / "evaluation_setup" / f"fold{k}_evaluate.txt", None, [], "\t")
    ev = tmp_path / "tut" / "TUT-acoustic-scenes-2017-evaluation"
    write_csv(ev / "meta.txt", None, [["audio/1.wav", "beach"]], "\t")
    for row in meta:
        write_audio(dev / row[0])
    write_audio(ev / "audio" / "1.wav")
    clips, _ = build("tut2017", tmp_path / "tut", tmp_path)
    got = by_name(clips)
    assert got["b020_90_100.wav"].labels == ["cafe/restaurant"] and got["b020_90_100.wav"].split == "fold1"
    assert got["a001_0_10.wav"].split == "fold3"
    assert got["1.wav"].split == "evaluation" and got["1.wav"].labels == ["beach"]


def test_nsynth(tmp_path):
    root = tmp_path / "nsynth"
    examples = {
        "bass_synthetic_033-022-050": {
            "instrument_family_str": "bass",
            "pitch": 22,
            "velocity": 50,
            "qualities_str": ["dark"],
            "instrument_source_str": "synthetic",
            "instrument_str": "bass_synthetic_033",
        }
    }
    for split in ("valid", "test"):
        (root / f"nsynth-{split}").mkdir(parents=True)
        (root / f"nsynth-{split}" / "examples.json").write_text(json.dumps(examples))
        write_audio(root / f"nsynth-{split}" / "audio" / "bass_synthetic_033-022-050.wav", sample_rate=16000)
    clips, _ = build("nsynth", root, tmp_path)
    assert sorted(c.split for c in clips) == ["test", "valid"]
    assert clips[0].labels == ["bass"] and clips[0].extra["pitch"] == 22 and clips[0].extra["qualities"] == ["dark"]
    del examples["bass_synthetic_033-022-050"]["velocity"]
    (root / "nsynth-test" / "examples.json").write_text(json.dumps(examples))
    with pytest.raises(
        DatasetError, match=r"nsynth-test/examples\.json: example 'bass_synthetic_033-022-050' lacks 'velocity'"
    ):
        build("nsynth", root, tmp_path)


def test_vocalsound(tmp_path):
    root = tmp_path / "vs"
    write_csv(
        root / "class_labels_indices_vs.csv",
        ["index", "mid", "display_name"],
        [[0, "/m/01j3sz", "Laughter"], [1, "/m/01b_21", "Cough"]],
    )
    splits = {"tr.json": "f0003_0_cough.wav", "val.json": "m0100_0_laughter.wav", "te.json": "f2000_1_cough.wav"}
    mids = {"cough": "/m/01b_21", "laughter": "/m/01j3sz"}
    for name, wav in splits.items():
        label = wav.split("_")[-1][:-4]
        (root / "datafiles").mkdir(parents=True, exist_ok=True)
        (root / "datafiles" / name).write_text(
            json.dumps({"data": [{"wav": f"/authors/data/audio_16k/{wav}", "labels": mids[label]}]})
        )
        write_audio(root / "audio_16k" / wav, sample_rate=16000)
    clips, _ = build("vocalsound", root, tmp_path)
    got = by_name(clips)
    assert got["f0003_0_cough.wav"].labels == ["Cough"] and got["f0003_0_cough.wav"].split == "train"
    assert got["m0100_0_laughter.wav"].split == "validation" and got["f2000_1_cough.wav"].split == "test"
    assert got["f0003_0_cough.wav"].licence == "CC-BY-SA-4.0"


def test_speech_commands(tmp_path):
    root = tmp_path / "sc"
    for rel in (
        "yes/0a7c2a8d_nohash_0.wav",
        "yes/0b09edd3_nohash_1.wav",
        "no/0c5027de_nohash_0.wav",
        "_background_noise_/white_noise.wav",
    ):
        write_audio(root / rel, sample_rate=16000)
    (root / "validation_list.txt").write_text("yes/0b09edd3_nohash_1.wav\n")
    (root / "testing_list.txt").write_text("no/0c5027de_nohash_0.wav\n")
    clips, _ = build("speech_commands", root, tmp_path)
    got = by_name(clips)
    assert len(clips) == 3
    assert got["0a7c2a8d_nohash_0.wav"].split == "train" and got["0b09edd3_nohash_1.wav"].split == "validation"
    assert got["0c5027de_nohash_0.wav"].split == "test" and got["0c5027de_nohash_0.wav"].labels == ["no"]
    (root / "testing_list.txt").unlink()
    with pytest.raises(DatasetError, match=r"testing_list\.txt: file not found"):
        build("speech_commands", root, tmp_path)


def test_crema_d(tmp_path):
    root = tmp_path / "CREMA-D"
    for name in ("1001_DFA_ANG_XX.wav", "1091_WSI_SAD_HI.wav", "notes.wav"):
        write_audio(root / "AudioWAV" / name, sample_rate=16000)
    clips, out = build("crema_d", root, tmp_path)
    got = by_name(clips)
    assert got["1001_DFA_ANG_XX.wav"].labels == ["anger"] and got["1091_WSI_SAD_HI.wav"].labels == ["sad"]
    assert got["1091_WSI_SAD_HI.wav"].extra == {"actor": "1091", "sentence": "WSI", "level": "high"}
    assert len(clips) == 2 and "notes.wav" in skipped_lines(out)[0]


def test_ravdess(tmp_path):
    root = tmp_path / "RAVDESS"
    write_audio(root / "Actor_12" / "03-01-06-01-02-01-12.wav", sample_rate=48000)
    write_audio(root / "Actor_01" / "03-02-08-02-01-02-01.wav", sample_rate=48000)
    clips, _ = build("ravdess", root, tmp_path)
    got = by_name(clips)
    fearful = got["03-01-06-01-02-01-12.wav"]
    assert fearful.labels == ["fearful"] and fearful.extra["actor_sex"] == "female"
    assert fearful.extra["statement"] == "Dogs are sitting by the door" and fearful.extra["vocal_channel"] == "speech"
    surprised = got["03-02-08-02-01-02-01.wav"]
    assert surprised.labels == ["surprised"] and surprised.extra["intensity"] == "strong"
    assert surprised.extra["actor_sex"] == "male" and surprised.extra["vocal_channel"] == "song"
