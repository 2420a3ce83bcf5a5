"""Adapters of the multi-label sets (FSD50K, AudioSet, DCASE 2017 task 4) on fake official layouts."""

from __future__ import annotations

import json

import pytest
from test_adapters_common import build, by_name, skipped_lines, write_audio, write_csv

from clapkit.data.adapters import DatasetError, labels_to_caption

AUDIOSET_CLASSES = [
    [0, "/m/09x0r", "Speech"],
    [1, "/m/05zppz", "Male speech, man speaking"],
    [137, "/m/04rlf", "Music"],
]


def test_fsd50k_labels_splits_licences_and_captions(tmp_path):
    root = tmp_path / "FSD50K"
    gt = root / "FSD50K.ground_truth"
    write_csv(
        gt / "dev.csv",
        ["fname", "labels", "mids", "split"],
        [
            [64760, "Electric_guitar,Guitar,Music", "/m/02sgy,/m/0342h,/m/04rlf", "train"],
            [16399, "Dog,Animal", "/m/0bt9lr,/m/0jbk", "val"],
        ],
    )
    write_csv(gt / "eval.csv", ["fname", "labels", "mids"], [[37199, "Speech", "/m/09x0r"]])
    write_audio(root / "FSD50K.dev_audio" / "64760.wav", sample_rate=44100)
    write_audio(root / "FSD50K.dev_audio" / "16399.wav", sample_rate=44100)
    write_audio(root / "FSD50K.eval_audio" / "37199.wav", sample_rate=44100)
    (root / "FSD50K.metadata").mkdir()
    (root / "FSD50K.metadata" / "dev_clips_info_FSD50K.json").write_text(
        json.dumps({"64760": {"license": "http://creativecommons.org/licenses/by-nc/3.0/", "title": "x"}})
    )
    clips, _ = build("fsd50k", root, tmp_path)
    got = by_name(clips)
    guitar = got["64760.wav"]
    assert guitar.labels == ["Electric_guitar", "Guitar", "Music"] and guitar.split == "train"
    assert guitar.licence == "CC-BY-NC-3.0" and got["16399.wav"].licence == "CC-BY-4.0"
    assert guitar.captions == [labels_to_caption(guitar.labels, f"fsd50k:{guitar.path}")]
    assert "electric guitar; guitar and music" in guitar.captions[0].lower()
    assert got["16399.wav"].split == "val" and got["37199.wav"].split == "eval"
    clips, _ = build("fsd50k", root, tmp_path, caption_labels=False)
    assert all(c.captions == [] for c in clips)


def test_fsd50k_missing_column(tmp_path):
    root = tmp_path / "FSD50K"
    write_csv(root / "FSD50K.ground_truth" / "dev.csv", ["fname", "labels", "mids"], [[1, "Dog", "/m/0bt9lr"]])
    with pytest.raises(DatasetError, match=r"FSD50K\.ground_truth/dev\.csv: missing column 'split'"):
        build("fsd50k", root, tmp_path)


def fake_audioset(root):
    write_csv(root / "class_labels_indices.csv", ["index", "mid", "display_name"], AUDIOSET_CLASSES)
    (root / "balanced_train_segments.csv").write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n"
        "# num_ytids=3, num_segs=3, num_unique_labels=3, num_positive_labels=4\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/m/05zppz"\n'
        '-0RWZT-miFs, 420.000, 430.000, "/m/04rlf"\n'
        'gone1234567, 0.000, 10.000, "/m/04rlf"\n'
    )
    (root / "eval_segments.csv").write_text(
        '# YTID, start_seconds, end_seconds, positive_labels\nY00aaBBcc_d, 10.000, 20.000, "/m/09x0r"\n'
    )
    write_audio(root / "audio" / "balanced" / "--PJHxphWEs.flac", sample_rate=16000)
    write_audio(root / "audio" / "balanced" / "Y-0RWZT-miFs.wav", sample_rate=16000)
    write_audio(root / "audio" / "eval" / "Y00aaBBcc_d_10.000_20.000.wav", sample_rate=16000)


def test_audioset(tmp_path):
    root = tmp_path / "audioset"
    fake_audioset(root)
    clips, out = build("audioset", root, tmp_path)
    got = by_name(clips)
    speech = got["--PJHxphWEs.flac"]
    assert speech.labels == ["Speech", "Male speech, man speaking"] and speech.split == "balanced_train"
    assert speech.extra["start"] == 30.0 and speech.captions and "speech" in speech.captions[0].lower()
    assert got["Y-0RWZT-miFs.wav"].labels == ["Music"]
    assert got["Y00aaBBcc_d_10.000_20.000.wav"].split == "eval"
    assert len(clips) == 3 and "gone1234567: audio file not found" in skipped_lines(out)[0]
    clips, _ = build("audioset", root, tmp_path, subsets=("eval",))
    assert [c.split for c in clips] == ["eval"]


def test_audioset_unknown_label(tmp_path):
    root = tmp_path / "audioset"
    fake_audioset(root)
    (root / "eval_segments.csv").write_text('abc, 0.0, 10.0, "/m/nope"\n')
    with pytest.raises(DatasetError, match=r"eval_segments\.csv:1: label '/m/nope' not in class_labels_indices\.csv"):
        build("audioset", root, tmp_path)


def test_dcase2017_task4(tmp_path):
    root = tmp_path / "dcase2017"
    write_csv(
        root / "groundtruth_weak_label_testing_set.csv",
        None,
        [
            ["-5QrBL6MzLg_60.000_70.000.wav", "60.000", "70.000", "Train horn"],
            ["-Gbohom8C4Q_30.000_40.000.wav", "30.000", "40.000", "Train horn"],
            ["-Gbohom8C4Q_30.000_40.000.wav", "30.000", "40.000", "Air horn, truck horn"],
        ],
        delimiter="\t",
    )
    write_csv(
        root / "groundtruth_weak_label_evaluation_set.csv",
        None,
        [["3ACjUf9QpAQ_30.000_40.000.wav", "30.000", "40.000", "Car alarm"]],
        delimiter="\t",
    )
    write_audio(root / "audio" / "testing" / "Y-5QrBL6MzLg_60.000_70.000.wav")
    write_audio(root / "audio" / "testing" / "Y-Gbohom8C4Q_30.000_40.000.wav")
    write_audio(root / "audio" / "evaluation" / "3ACjUf9QpAQ_30.000_40.000.wav")
    clips, _ = build("dcase2017_task4", root, tmp_path)
    got = by_name(clips)
    assert got["Y-Gbohom8C4Q_30.000_40.000.wav"].labels == ["Air horn, truck horn", "Train horn"]
    assert got["Y-5QrBL6MzLg_60.000_70.000.wav"].split == "test"
    assert got["3ACjUf9QpAQ_30.000_40.000.wav"].split == "evaluation"
    assert got["3ACjUf9QpAQ_30.000_40.000.wav"].captions == []  # evaluation set: no label captions by default
