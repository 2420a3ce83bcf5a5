"""WebDataset shards: write → verify round trip, tampering detected, reader output, failures."""

from __future__ import annotations

import fractions
import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
import soundfile as sf

from clapkit.audio.io import read_audio
from clapkit.data.manifest import Clip, write_manifest
from clapkit.data.shards import (
    ShardError,
    clip_key,
    shard_reader,
    verify_shards,
    write_shards,
)


def make_manifest(tmp_path, n_missing=0):
    """Five clips in different formats (FLAC copied as is; WAV 16/24-bit, float WAV re-encoded)."""
    rng = np.random.default_rng(0)
    clips, audio_dir = [], tmp_path / "audio"
    audio_dir.mkdir()
    formats = [
        ("a.flac", "PCM_16", 16000),
        ("b.wav", "PCM_16", 8000),
        ("c.wav", "PCM_24", 8000),
        ("d.wav", "FLOAT", 8000),
        ("e.flac", "PCM_24", 22050),
    ]
    for name, subtype, rate in formats:
        data = (rng.standard_normal((600, 2 if name == "c.wav" else 1)) * 0.2).astype("float32")
        sf.write(audio_dir / name, data, rate, subtype=subtype)
        clips.append(
            Clip(
                path=f"audio/{name}",
                captions=[f"caption of {name}"],
                labels=["x"],
                split="train",
                source="test",
                licence="CC0-1.0",
                duration=600 / rate,
                sample_rate=rate,
                sha256=hashlib.sha256((audio_dir / name).read_bytes()).hexdigest(),
                extra={"n": name},
            )
        )
    for k in range(n_missing):
        clips.append(Clip(path=f"audio/missing{k}.wav", sample_rate=8000))
    manifest = tmp_path / "manifest.jsonl"
    write_manifest(manifest, clips)
    return manifest, clips


def rewrite_member(shard, predicate, change):
    """Rewrite a tar with ``change(bytes) -> bytes`` applied to members matching ``predicate``."""
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar if m.isfile()]
    with tarfile.open(shard, "w") as tar:
        for member, data in members:
            data = change(data) if predicate(member.name) else data
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


def test_round_trip_splits_shards_and_verifies(tmp_path):
    manifest, clips = make_manifest(tmp_path)
    report = write_shards(manifest, str(tmp_path / "shards" / "s-%04d.tar"), max_clips=2)
    assert report.written == 5 and report.failures == []
    assert [p.name for p in report.shards] == ["s-0000.tar", "s-0001.tar", "s-0002.tar"]
    result = verify_shards(manifest, str(tmp_path / "shards" / "s-%04d.tar"))
    assert result.ok, result.problems
    assert result.checked == 5
    # the brace and glob forms find the same shards
    assert verify_shards(manifest, str(tmp_path / "shards" / "s-{0000..0002}.tar")).ok
    assert verify_shards(manifest, str(tmp_path / "shards" / "*.tar")).ok


def test_flac_sources_stored_byte_for_byte_and_json_carries_manifest_record(tmp_path):
    manifest, clips = make_manifest(tmp_path)
    report = write_shards(manifest, str(tmp_path / "s-%02d.tar"))
    with tarfile.open(report.shards[0]) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    key = clip_key(clips[0])
    assert members[f"{key}.flac"] == (tmp_path / "audio" / "a.flac").read_bytes()
    record = json.loads(members[f"{key}.json"])
    assert record["path"] == "audio/a.flac" and record["captions"] == ["caption of a.flac"] and record["n"] == "a.flac"
    assert sf.info(io.BytesIO(members[f"{clip_key(clips[1])}.flac"])).format == "FLAC"  # WAV re-encoded


def test_reader_yields_waveform_rate_metadata(tmp_path):
    manifest, clips = make_manifest(tmp_path)
    write_shards(manifest, str(tmp_path / "s-%02d.tar"), max_clips=3)
    samples = {meta["path"]: (wave, rate) for wave, rate, meta in shard_reader(str(tmp_path / "s-*.tar"))}
    assert set(samples) == {c.path for c in clips}
    for name in ("a.flac", "b.wav", "c.wav"):  # 16/24-bit integer sources come back exactly
        source, rate = sf.read(tmp_path / "audio" / name, dtype="float32", always_2d=True)
        wave, got_rate = samples[f"audio/{name}"]
        assert got_rate == rate and tuple(wave.shape) == (source.shape[1], source.shape[0])
        np.testing.assert_array_equal(wave.numpy(), source.T)
    wave, _ = samples["audio/d.wav"]  # float source quantised to 24 bits
    source, _ = sf.read(tmp_path / "audio" / "d.wav", dtype="float32", always_2d=True)
    np.testing.assert_allclose(wave.numpy(), source.T, atol=2.0**-22)
    shuffled = [meta["path"] for _, _, meta in shard_reader(str(tmp_path / "s-*.tar"), shuffle=10, seed=1)]
    assert sorted(shuffled) == sorted(samples)


def test_missing_audio_is_listed_and_others_written(tmp_path):
    manifest, _ = make_manifest(tmp_path, n_missing=2)
    report = write_shards(manifest, str(tmp_path / "s-%02d.tar"))
    assert report.written == 5
    assert len(report.failures) == 2 and report.failures[0] == f"{tmp_path / 'audio' / 'missing0.wav'}: file not found"
    problems = verify_shards(manifest, str(tmp_path / "s-%02d.tar")).problems
    assert len(problems) == 2 and all("is in no shard" in p for p in problems)


def add_clip(manifest, clips, path, **fields):
    """Append a clip for the audio file at ``path`` (relative to the manifest's folder) and rewrite the manifest."""
    audio = manifest.parent / path
    clips.append(Clip(path=path, captions=["c"], labels=["x"], split="train", source="test", licence="CC0-1.0",
                      sha256=hashlib.sha256(audio.read_bytes()).hexdigest(), **fields))
    write_manifest(manifest, clips)


def test_sources_only_pyav_reads_are_decoded_by_the_shared_decoder(tmp_path):
    """An m4a source (libsndfile cannot read it) is decoded like inference decodes it, then stored as FLAC."""
    av = pytest.importorskip("av")
    manifest, clips = make_manifest(tmp_path)
    path = tmp_path / "audio" / "f.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.full((1, 8000), 0.25, np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 16000, 0, fractions.Fraction(1, 16000)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    add_clip(manifest, clips, "audio/f.m4a", sample_rate=16000)
    report = write_shards(manifest, str(tmp_path / "s-%02d.tar"))
    assert report.written == 6 and report.failures == []
    samples = {meta["path"]: (wave, rate) for wave, rate, meta in shard_reader(str(tmp_path / "s-*.tar"))}
    wave, rate = samples["audio/f.m4a"]
    expected, _ = read_audio(path)
    assert rate == 16000 and np.abs(wave.numpy() - expected.T).max() <= 2.0**-23  # 24-bit FLAC of the decoded m4a
    assert verify_shards(manifest, report.shards).ok  # the source re-decodes to the same samples


@pytest.mark.parametrize("name,subtype", [("t.flac", "PCM_16"), ("t.wav", "PCM_16")])
def test_truncated_sources_are_listed_not_stored_cut_short(tmp_path, name, subtype):
    manifest, clips = make_manifest(tmp_path)
    path = tmp_path / "audio" / name
    sf.write(path, np.random.default_rng(5).uniform(-0.5, 0.5, (44100, 2)).astype(np.float32), 44100, subtype=subtype)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    add_clip(manifest, clips, f"audio/{name}", sample_rate=44100)
    report = write_shards(manifest, str(tmp_path / "s-%02d.tar"))
    assert report.written == 5 and len(report.failures) == 1
    failure = report.failures[0]
    assert failure.startswith(f"{path}: ") and "\n" not in failure
    assert ("does not decode to its end" if name.endswith(".flac") else "ends early or is damaged") in failure


def change_one_sample(data):
    """A valid FLAC whose last sample differs by one 16-bit step."""
    samples, rate = sf.read(io.BytesIO(data), dtype="int32", always_2d=True)
    samples[-1, 0] ^= 1 << 16
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC", subtype="PCM_24")
    return buffer.getvalue()


def corrupt_bytes(data):
    """The same FLAC with a run of bytes in its middle zeroed."""
    middle = len(data) // 2
    return data[:middle] + bytes(16) + data[middle + 16 :]


@pytest.mark.parametrize("target", ["a.flac", "b.wav"])
@pytest.mark.parametrize("tamper", [change_one_sample, corrupt_bytes])
def test_tampered_audio_detected(tmp_path, target, tamper):
    manifest, clips = make_manifest(tmp_path)
    report = write_shards(manifest, str(tmp_path / "s-%02d.tar"))
    key = clip_key(next(c for c in clips if c.path.endswith(target)))
    rewrite_member(report.shards[0], lambda name: name == f"{key}.flac", tamper)
    result = verify_shards(manifest, report.shards)
    assert not result.ok
    assert all(key in p for p in result.problems)
    assert any("pcm_sha256" in p or "does not decode" in p for p in result.problems)


def test_tampered_metadata_and_duplicates_detected(tmp_path):
    manifest, clips = make_manifest(tmp_path)
    report = write_shards(manifest, str(tmp_path / "s-%02d.tar"), max_clips=3)
    key = clip_key(clips[1])

    def relabel(data):
        record = json.loads(data)
        record["labels"] = ["y"]
        return json.dumps(record).encode()

    rewrite_member(report.shards[0], lambda name: name == f"{key}.json", relabel)
    problems = verify_shards(manifest, report.shards).problems
    assert problems == [f"{report.shards[0]}:{key}: metadata 'labels' is ['y'], manifest has ['x']"]
    copy = tmp_path / "s-99.tar"
    copy.write_bytes(report.shards[1].read_bytes())
    problems = verify_shards(manifest, [*report.shards, copy]).problems
    assert sum("stored more than once" in p for p in problems) == 2  # the second shard's two clips


def test_changed_source_detected_for_reencoded_clip(tmp_path):
    manifest, clips = make_manifest(tmp_path)
    report = write_shards(manifest, str(tmp_path / "s-%02d.tar"))
    sf.write(tmp_path / "audio" / "b.wav", np.zeros(600, dtype="float32"), 8000, subtype="PCM_16")
    problems = verify_shards(manifest, report.shards).problems
    assert len(problems) == 1 and "differs from the source" in problems[0]
    assert verify_shards(manifest, report.shards, check_sources=False).ok


def test_bad_arguments(tmp_path):
    manifest, _ = make_manifest(tmp_path)
    with pytest.raises(ShardError, match="needs a number field"):
        write_shards(manifest, str(tmp_path / "shard.tar"))
    with pytest.raises(ShardError, match="exactly one number field"):
        write_shards(manifest, str(tmp_path / "shard-%s-%d.tar"))
    with pytest.raises(ShardError, match="no shard files found"):
        verify_shards(manifest, str(tmp_path / "none-*.tar"))
