"""Adapters of the captioned sets (AudioCaps, Clotho, WavCaps, MACS) on fake official layouts."""

from __future__ import annotations

import json

import pytest
from test_adapters_common import build, by_name, skipped_lines, write_audio, write_csv

from clapkit.data.adapters import DatasetError


def test_audiocaps_groups_five_captions(tmp_path):
    root = tmp_path / "audiocaps"
    header = ["audiocap_id", "youtube_id", "start_time", "caption"]
    write_csv(root / "dataset" / "train.csv", header, [[91139, "r1nicOVtvkQ", 130, "A woman talks nearby"]])
    write_csv(
        root / "dataset" / "test.csv", header, [[103549 + k, "--0w1YA1Hm4", 30, f"caption {k}"] for k in range(5)]
    )
    write_audio(root / "audio" / "train" / "Yr1nicOVtvkQ.wav")
    write_audio(root / "audio" / "test" / "--0w1YA1Hm4_30.wav")
    clips, _ = build("audiocaps", root, tmp_path)
    got = by_name(clips)
    test_clip = got["--0w1YA1Hm4_30.wav"]
    assert test_clip.split == "test" and test_clip.captions == [f"caption {k}" for k in range(5)]
    assert test_clip.extra["audiocap_ids"] == [str(103549 + k) for k in range(5)]
    assert got["Yr1nicOVtvkQ.wav"].captions == ["A woman talks nearby"] and got["Yr1nicOVtvkQ.wav"].split == "train"


def test_clotho(tmp_path):
    root = tmp_path / "clotho"
    header = ["file_name"] + [f"caption_{k}" for k in range(1, 6)]
    write_csv(root / "clotho_captions_development.csv", header, [["Distorted AM Radio noise.wav", *"abcde"]])
    write_csv(root / "clotho_captions_evaluation.csv", header, [["rain.wav", *"vwxyz"]])
    (root / "clotho_metadata_development.csv").write_bytes(
        "file_name,keywords,sound_id,sound_link,start_end_samples,manufacturer,license\n"
        "Distorted AM Radio noise.wav,radio;noise,1,http://x,,Caf\xe9,http://creativecommons.org/licenses/by/3.0/\n".encode(
            "ISO-8859-1"
        )
    )
    write_audio(root / "development" / "Distorted AM Radio noise.wav", sample_rate=44100)
    write_audio(root / "evaluation" / "rain.wav", sample_rate=44100)
    clips, _ = build("clotho", root, tmp_path)
    got = by_name(clips)
    radio = got["Distorted AM Radio noise.wav"]
    assert radio.captions == list("abcde") and radio.split == "development" and radio.licence == "CC-BY-3.0"
    assert got["rain.wav"].split == "evaluation" and len(got["rain.wav"].captions) == 5


def test_clotho_missing_caption_column(tmp_path):
    root = tmp_path / "clotho"
    write_csv(root / "clotho_captions_validation.csv", ["file_name", "caption_1"], [["a.wav", "x"]])
    with pytest.raises(DatasetError, match=r"clotho_captions_validation\.csv: missing column 'caption_2'"):
        build("clotho", root, tmp_path)


def test_wavcaps(tmp_path):
    root = tmp_path / "WavCaps"
    sources = {
        "AudioSet_SL": ("as_final.json", [{"id": "Y--PJHxphWEs.wav", "caption": "A man speaks.", "duration": 10}]),
        "FreeSound": (
            "fsd_final.json",
            [
                {
                    "id": "180913",
                    "caption": "Rain falls.",
                    "duration": 3,
                    "license": "http://creativecommons.org/publicdomain/zero/1.0/",
                },
                {"id": "999", "caption": "Missing.", "duration": 1},
            ],
        ),
    }
    for source, (name, data) in sources.items():
        (root / "json_files" / source).mkdir(parents=True)
        (root / "json_files" / source / name).write_text(json.dumps({"num_captions_per_audio": 1, "data": data}))
    write_audio(root / "Audio" / "AudioSet_SL" / "Y--PJHxphWEs.flac", sample_rate=32000)
    write_audio(root / "Audio" / "FreeSound" / "180913.flac", sample_rate=32000)
    clips, out = build("wavcaps", root, tmp_path)
    got = by_name(clips)
    assert got["Y--PJHxphWEs.flac"].captions == ["A man speaks."]
    assert got["Y--PJHxphWEs.flac"].extra["wavcaps_source"] == "AudioSet_SL"
    assert got["180913.flac"].licence == "CC0-1.0" and got["180913.flac"].split == "train"
    assert len(clips) == 2 and "999.flac: audio file not found" in skipped_lines(out)[0]


def test_wavcaps_malformed_json(tmp_path):
    root = tmp_path / "WavCaps"
    (root / "json_files" / "SoundBible").mkdir(parents=True)
    (root / "json_files" / "SoundBible" / "sb_final.json").write_text('{"data": [{"id": "1"}]}')
    with pytest.raises(DatasetError, match=r"sb_final\.json: data\[0\] lacks 'id' or 'caption'"):
        build("wavcaps", root, tmp_path)
    (root / "json_files" / "SoundBible" / "sb_final.json").write_text('{"data": [')
    with pytest.raises(DatasetError, match=r"sb_final\.json: not valid JSON"):
        build("wavcaps", root, tmp_path)


def test_macs(tmp_path):
    root = tmp_path / "MACS"
    (root).mkdir()
    (root / "MACS.yaml").write_text(
        "files:\n"
        "- filename: airport-barcelona-0-0-a.wav\n"
        "  annotations:\n"
        "  - {annotator_id: 1, sentence: people talk in a big hall, tags: [adults_talking, announcement]}\n"
        "  - {annotator_id: 7, sentence: an announcement echoes, tags: [announcement]}\n"
        "- filename: street_traffic-lyon-1-2-a.wav\n"
        "  annotations:\n"
        "  - {annotator_id: 2, sentence: cars pass by, tags: [traffic]}\n"
    )
    write_audio(root / "audio" / "airport-barcelona-0-0-a.wav", sample_rate=48000)
    write_audio(root / "audio" / "street_traffic-lyon-1-2-a.wav", sample_rate=48000)
    clips, _ = build("macs", root, tmp_path)
    got = by_name(clips)
    airport = got["airport-barcelona-0-0-a.wav"]
    assert airport.captions == ["people talk in a big hall", "an announcement echoes"]
    assert airport.labels == ["airport"] and airport.extra["tags"] == ["adults_talking", "announcement"]
    assert got["street_traffic-lyon-1-2-a.wav"].labels == ["street_traffic"]
    (root / "MACS.yaml").write_text("files: [\n")
    with pytest.raises(DatasetError, match=r"MACS\.yaml: not valid YAML"):
        build("macs", root, tmp_path)
