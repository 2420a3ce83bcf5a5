"""Shared helpers for the adapter tests (imported by the other test_adapters_* files) and tests of
the shared adapter machinery: table reading, captions from labels, registry, build_manifest."""

from __future__ import annotations

import csv
import dataclasses
import fractions
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clapkit.data.adapters import (
    ADAPTERS,
    DatasetError,
    build_manifest,
    collect_manifest,
    labels_to_caption,
)
from clapkit.data.adapters import build as adapters_build
from clapkit.data.adapters.build import Skipped, probe
from clapkit.data.adapters.common import Entry, licence_from_url, read_table
from clapkit.data.manifest import Clip, read_manifest, resolve

SAMPLE_RATE = 8000
FRAMES = 400  # 50 ms at 8 kHz: enough to be valid audio, fast to hash
_counter = iter(range(1_000_000))


def write_audio(path: Path, sample_rate: int = SAMPLE_RATE, frames: int = FRAMES, **kw) -> Path:
    """A short noise clip, different for every call (so every file has its own sha256)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(next(_counter))
    sf.write(path, (rng.standard_normal(frames) * 0.1).astype("float32"), sample_rate, **kw)
    return path


def write_csv(path: Path, header: list[str] | None, rows: list[list], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter, lineterminator="\n")
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def build(dataset: str, root: Path, tmp_path: Path, **options):
    """Build a manifest into tmp_path/manifests and check what every adapter must get right:
    paths resolvable from the manifest, sha256 of the file bytes, duration and sample rate."""
    out = build_manifest(dataset, root, tmp_path / "manifests" / f"{dataset}.jsonl", **options)
    clips = read_manifest(out)
    for clip in clips:
        audio = resolve(out, clip)
        assert audio.is_file()
        assert not Path(clip.path).is_absolute()
        assert clip.sha256 == hashlib.sha256(audio.read_bytes()).hexdigest()
        info = sf.info(str(audio))
        assert clip.sample_rate == info.samplerate
        assert clip.duration == pytest.approx(info.frames / info.samplerate)
        assert clip.source == dataset
    return clips, out


def by_name(clips) -> dict:
    return {Path(c.path).name: c for c in clips}


def skipped_lines(out: Path) -> list[str]:
    report = out.with_name(out.name + ".skipped.txt")
    return report.read_text().splitlines() if report.exists() else []


# --- tests of the shared machinery ------------------------------------------------------------


def test_read_table_names_missing_column(tmp_path):
    path = write_csv(tmp_path / "meta.csv", ["filename", "target"], [["a.wav", "1"]])
    with pytest.raises(DatasetError, match=r"meta\.csv: missing column 'fold'"):
        read_table(path, ("filename", "fold"))


def test_read_table_names_line_with_wrong_field_count(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(DatasetError, match=r"meta\.csv:3: expected 2 fields, found 1"):
        read_table(path, ("a", "b"))


def test_read_table_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=r"nope\.csv: file not found"):
        read_table(tmp_path / "nope.csv")


def test_read_table_headerless_with_comments(tmp_path):
    path = tmp_path / "segs.csv"
    path.write_text('# comment\nabc, 1.000, 2.000, "/m/1,/m/2"\n')
    rows = read_table(path, comment="#", fieldnames=("id", "start", "end", "labels"))
    assert [dict(r) for r in rows] == [{"id": "abc", "start": "1.000", "end": "2.000", "labels": "/m/1,/m/2"}]
    assert rows[0].where.endswith("segs.csv:2")


def test_labels_to_caption_is_deterministic_and_names_every_label():
    first = labels_to_caption(["Dog", "Bark"], "fsd50k:a.wav")
    assert first == labels_to_caption(["Dog", "Bark"], "fsd50k:a.wav")
    assert "dog and bark" in first.lower()
    assert first[0].isupper() and first.endswith(".")
    three = labels_to_caption(["Electric_guitar", "Guitar", "Music"], "x")
    assert "electric guitar; guitar and music" in three.lower()
    assert len({labels_to_caption(["Dog"], f"id{i}") for i in range(50)}) > 1  # several templates in use


def test_licence_from_url():
    assert licence_from_url("http://creativecommons.org/licenses/by-nc/3.0/") == "CC-BY-NC-3.0"
    assert licence_from_url("http://creativecommons.org/publicdomain/zero/1.0/") == "CC0-1.0"


def test_registry_lists_every_dataset_with_layout_docs():
    expected = {
        "esc50",
        "esc50_actions",
        "urbansound8k",
        "gtzan_genres",
        "gtzan_music_speech",
        "fsd50k",
        "audioset",
        "dcase2017_task4",
        "vocalsound",
        "sesa",
        "tut2017",
        "nsynth",
        "beijing_opera",
        "crema_d",
        "ravdess",
        "speech_commands",
        "libricount",
        "audiocaps",
        "clotho",
        "wavcaps",
        "macs",
    }
    assert set(ADAPTERS) == expected
    assert all("<root>" in adapter.doc for adapter in ADAPTERS.values())


def test_unknown_dataset_option_and_folder(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'esc51'"):
        build_manifest("esc51", tmp_path, tmp_path / "m.jsonl")
    with pytest.raises(DatasetError, match="esc50: unknown option 'fold'"):
        build_manifest("esc50", tmp_path, tmp_path / "m.jsonl", fold=1)
    with pytest.raises(DatasetError, match="dataset folder not found"):
        build_manifest("esc50", tmp_path / "missing", tmp_path / "m.jsonl")


def test_missing_audio_is_skipped_and_listed(tmp_path, caplog):
    root = tmp_path / "ESC-50"
    rows = [["1-1-A-0.wav", 1, 0, "dog", "True", 1, "A"], ["1-2-A-0.wav", 1, 0, "dog", "True", 2, "A"]]
    write_csv(
        root / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file", "take"], rows
    )
    write_audio(root / "audio" / "1-1-A-0.wav")
    with caplog.at_level(logging.WARNING):
        clips, out = build("esc50", root, tmp_path)
    assert [Path(c.path).name for c in clips] == ["1-1-A-0.wav"]
    assert len(skipped_lines(out)) == 1 and "1-2-A-0.wav: audio file not found" in skipped_lines(out)[0]
    assert "1 clip(s) skipped" in caplog.text


def test_absolute_paths_and_label_captions_options(tmp_path):
    root = tmp_path / "ESC-50"
    write_csv(
        root / "meta" / "esc50.csv",
        ["filename", "fold", "target", "category", "esc10", "src_file", "take"],
        [["1-1-A-0.wav", 1, 0, "dog", "True", 1, "A"]],
    )
    write_audio(root / "audio" / "1-1-A-0.wav")
    clips, _ = collect_manifest("esc50", root, tmp_path / "m.jsonl", absolute_paths=True, caption_labels=True)
    assert Path(clips[0].path).is_absolute()
    assert clips[0].captions == [labels_to_caption(["dog"], f"esc50:{clips[0].path}")]
    clips, _ = collect_manifest("esc50", root, tmp_path / "m.jsonl")
    assert clips[0].captions == [] and clips[0].path == "ESC-50/audio/1-1-A-0.wav"


# --- probing audio: the same decoder as inference --------------------------------------------


def write_with_pyav(path: Path, codec: str, container: str, rate: int = 48000, seconds: float = 1.0) -> Path:
    """A stereo tone encoded with PyAV (formats libsndfile cannot read)."""
    av = pytest.importorskip("av")
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = np.tile(0.3 * np.sin(np.arange(round(rate * seconds)) / 10, dtype=np.float32), (2, 1))
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, fractions.Fraction(1, rate)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


@pytest.mark.parametrize("name,codec,container", [("clip.m4a", "aac", "ipod"), ("clip.webm", "libopus", "webm")])
def test_probe_reads_files_only_pyav_decodes(tmp_path, name, codec, container):
    path = write_with_pyav(tmp_path / "audio" / name, codec, container)
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(path))  # what the probe used to call: such files were skipped
    clip = probe(Entry(audio=path, labels=["tone"]), "test", tmp_path, False, False)
    assert isinstance(clip, Clip), clip
    assert clip.sample_rate == 48000 and clip.duration == pytest.approx(1.0, abs=0.05)
    assert clip.path == f"audio/{name}" and clip.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_folder_adapter_keeps_m4a_clips(tmp_path):
    root = tmp_path / "gtzan_ms"
    write_with_pyav(root / "music_speech" / "music_wav" / "bagpipe.m4a", "aac", "ipod")
    write_audio(root / "music_speech" / "speech_wav" / "talk.wav")
    clips, skipped = collect_manifest("gtzan_music_speech", root, tmp_path / "m.jsonl")
    assert sorted(Path(c.path).name for c in clips) == ["bagpipe.m4a", "talk.wav"] and skipped == []


def test_probe_skips_what_the_decoder_refuses_with_its_reason(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio" * 50)
    one_hz = write_audio(tmp_path / "one_hz.wav")
    data = bytearray(one_hz.read_bytes())
    data[24:28] = (1).to_bytes(4, "little")  # the 'fmt ' chunk's sample rate: 1 Hz
    one_hz.write_bytes(bytes(data))
    broken = tmp_path / "link.wav"
    broken.symlink_to(tmp_path / "gone.wav")
    reasons = {}
    for path in (garbage, one_hz, broken, tmp_path / "missing.wav"):
        result = probe(Entry(audio=path), "test", tmp_path, False, False)
        assert isinstance(result, Skipped) and "\n" not in str(result)
        reasons[path.name] = result.reason
    assert reasons["garbage.wav"].startswith("unreadable audio (not a recognised audio file")
    assert reasons["one_hz.wav"] == ("unreadable audio (header sample rate 1 Hz is outside the accepted range "
                                     "1000-768000 Hz)")
    assert reasons["link.wav"] == f"unreadable audio (broken symbolic link to {tmp_path / 'gone.wav'})"
    assert reasons["missing.wav"] == "audio file not found"


def test_probe_counts_frames_where_the_container_gives_no_length(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "clip.wav", frames=4321)
    real = adapters_build.audio_info
    unknown_length = lambda p: dataclasses.replace(real(p), frames=None, duration=None)  # noqa: E731
    monkeypatch.setattr(adapters_build, "audio_info", unknown_length)
    clip = probe(Entry(audio=path), "test", tmp_path, False, False)
    assert clip.duration == 4321 / SAMPLE_RATE
