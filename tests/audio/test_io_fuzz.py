"""Fuzzing the decoder with malformed files.

The specification every file below must meet, whatever its bytes or name:

* ``load_audio`` / ``stream_audio`` either return finite float32 mono audio, or raise ``AudioError``
  whose message is one line starting with the file's name (as ``describe`` prints it);
* ``audio_info`` and ``read_audio`` either succeed or raise such an ``AudioError``;
* a file that decodes partly gives at most one ``TruncatedAudioWarning`` per decoding, one line
  naming the file;
* memory stays bounded (tracemalloc peak under 200 MB) whatever a header claims.

The files: header lies (data sizes, rates, channels, block sizes, codec tags, FLAC STREAMINFO),
truncations at many offsets of valid WAV/FLAC/OGG/MP3, bit flips, random bytes behind real magic
numbers, codecs no decoder knows, and odd names. Everything is generated from a fixed seed.
"""
from __future__ import annotations

import fractions
import io
import os
import struct
import tracemalloc
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import soundfile as sf

from clapkit.audio.io import (
    AudioError,
    TruncatedAudioWarning,
    audio_info,
    describe,
    load_audio,
    read_audio,
    stream_audio,
)

SEED = 20240917
TARGET_RATE = 16000
PEAK_BYTES = 200 * 2**20


# --- valid files to start from --------------------------------------------------------------


def noise(rate: int, seconds: float, channels: int, rng: np.random.Generator) -> np.ndarray:
    return (0.3 * rng.standard_normal((round(rate * seconds), channels))).clip(-1, 1).astype(np.float32)


def encoded(wave: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def mp3_bytes(wave: np.ndarray, rate: int) -> bytes | None:
    """An MP3 from libsndfile if it can write one, else from PyAV's encoder, else None."""
    if "MP3" in sf.available_formats():
        return encoded(wave, rate, "MP3", "MPEG_LAYER_III")
    av = pytest.importorskip("av")
    buffer = io.BytesIO()
    try:
        with av.open(buffer, "w", format="mp3") as out:
            stream = out.add_stream("libmp3lame", rate=rate, layout="stereo")
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave.T), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, 0, fractions.Fraction(1, rate)
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                out.mux(packet)
    except Exception:  # no MP3 encoder in this FFmpeg build
        return None
    return buffer.getvalue()


def valid_files(rng: np.random.Generator) -> dict[str, bytes]:
    wave = noise(22050, 0.6, 2, rng)
    files = {
        "pcm16.wav": encoded(wave, 22050, "WAV", "PCM_16"),
        "float.wav": encoded(wave, 22050, "WAV", "FLOAT"),
        "clip.flac": encoded(wave, 22050, "FLAC", "PCM_16"),
        "clip.ogg": encoded(wave, 22050, "OGG", "VORBIS"),
    }
    mp3 = mp3_bytes(wave, 22050)
    if mp3:
        files["clip.mp3"] = mp3
    return files


# --- malformed files ------------------------------------------------------------------------


def wav_with(wav: bytes, **fields: int) -> bytes:
    """A PCM WAV with 'fmt ' fields (tag, channels, rate, byte_rate, align, bits) or sizes (riff, data) replaced."""
    out = bytearray(wav)
    fmt, chunk = out.find(b"fmt ") + 8, out.find(b"data") + 4
    offsets = {"tag": (fmt, "<H"), "channels": (fmt + 2, "<H"), "rate": (fmt + 4, "<I"), "byte_rate": (fmt + 8, "<I"),
               "align": (fmt + 12, "<H"), "bits": (fmt + 14, "<H"), "riff": (4, "<I"), "data": (chunk, "<I")}
    for field, value in fields.items():
        offset, layout = offsets[field]
        struct.pack_into(layout, out, offset, value)
    return bytes(out)


def flac_with(data: bytes, *, rate: int | None = None, total: int | None = None, channels: int | None = None) -> bytes:
    """A FLAC whose STREAMINFO claims another rate, length or channel count (20/36/3-bit fields)."""
    out = bytearray(data)
    word = int.from_bytes(out[18:26], "big")  # rate:20 | channels-1:3 | bits-1:5 | total samples:36
    old_rate, old_channels, bits, old_total = word >> 44, (word >> 41) & 7, (word >> 36) & 31, word & (2**36 - 1)
    rate = old_rate if rate is None else rate
    channels = old_channels if channels is None else channels - 1
    total = old_total if total is None else total
    out[18:26] = ((rate << 44) | (channels << 41) | (bits << 36) | total).to_bytes(8, "big")
    return bytes(out)


def header_lies(files: dict[str, bytes]) -> dict[str, bytes]:
    wav, flac = files["pcm16.wav"], files["clip.flac"]
    lies = {f"wav_{field}_{value}.wav": wav_with(wav, **{field: value}) for field, value in [
        ("data", 0), ("data", 3), ("data", 0xFFFFFFFF), ("data", 0x7FFFFFF0), ("riff", 0), ("riff", 0xFFFFFFFF),
        ("rate", 0), ("rate", 1), ("rate", 999), ("rate", 768_001), ("rate", 0xFFFFFFFF),
        ("channels", 0), ("channels", 3), ("channels", 300), ("channels", 0xFFFF),
        ("align", 0), ("align", 0xFFFF), ("bits", 0), ("bits", 7), ("bits", 64), ("byte_rate", 0),
        ("tag", 0x1234), ("tag", 0x0003), ("tag", 0xFFFE), ("tag", 0x0055), ("tag", 0)]}
    lies["wav_300_channels_768k.wav"] = wav_with(wav, channels=300, rate=768_000, align=600, byte_rate=768_000 * 600)
    lies.update({
        "flac_rate_0.flac": flac_with(flac, rate=0), "flac_rate_1.flac": flac_with(flac, rate=1),
        "flac_rate_max.flac": flac_with(flac, rate=2**20 - 1), "flac_channels_8.flac": flac_with(flac, channels=8),
        "flac_total_huge.flac": flac_with(flac, total=2**36 - 1), "flac_total_1.flac": flac_with(flac, total=1),
    })
    return lies


def truncations(files: dict[str, bytes], rng: np.random.Generator) -> dict[str, bytes]:
    cuts = {}
    for name, data in files.items():
        offsets = {1, 4, 12, 44, 100, len(data) // 2, len(data) - 10, len(data) - 1}
        offsets |= set(rng.integers(1, len(data), 12).tolist())
        cuts.update({f"cut{offset:06d}_{name}": data[:offset] for offset in sorted(offsets)})
    return cuts


def damaged(files: dict[str, bytes], rng: np.random.Generator) -> dict[str, bytes]:
    """Valid files with random bytes overwritten, and random bytes behind real magic numbers."""
    out = {}
    for name, data in files.items():
        for trial in range(2):
            flipped = np.frombuffer(data, np.uint8).copy()
            flipped[rng.integers(0, len(data), 24)] = rng.integers(0, 256, 24, dtype=np.uint8)
            out[f"flip{trial}_{name}"] = flipped.tobytes()
    magics = {"riff.wav": b"RIFF\xff\xff\xff\x7fWAVEfmt ", "flac.flac": b"fLaC", "ogg.ogg": b"OggS\x00\x02",
              "id3.mp3": b"ID3\x04\x00", "sync.mp3": b"\xff\xfb\x90\x00", "m4a.m4a": b"\x00\x00\x00\x20ftypM4A ",
              "plain.wav": b""}
    for name, magic in magics.items():
        for size in (3, 700, 40_000):
            out[f"garbage{size}_{name}"] = magic + rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    return out


def odd_codecs(rng: np.random.Generator) -> dict[str, bytes]:
    """Containers holding a codec libsndfile cannot read (and no audio at all), made with PyAV."""
    av = pytest.importorskip("av")
    out = {}
    kinds = (("aac.m4a", "ipod", "aac"), ("alac.m4a", "ipod", "alac"), ("opus.webm", "webm", "libopus"))
    for name, fmt, codec in kinds:
        buffer = io.BytesIO()
        try:
            with av.open(buffer, "w", format=fmt) as container:
                stream = container.add_stream(codec, rate=48000, layout="stereo")
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(noise(48000, 0.3, 2, rng).T), format="fltp",
                                                   layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = 48000, 0, fractions.Fraction(1, 48000)
                for packet in [*stream.encode(frame), *stream.encode(None)]:
                    container.mux(packet)
        except Exception:  # encoder missing from this FFmpeg build
            continue
        data = buffer.getvalue()
        out[name] = data
        out[f"cut_{name}"] = data[: len(data) * 2 // 3]
    return out


ODD_NAMES = [b"with space.wav", "\u00fcn\u00efc\u00f8d\u00e9 \u97f3.wav".encode(), b"caf\xe9.wav", b"-leading-dash.wav",
             b".wav", b"new\nline.wav", b"no_extension", b"trailing space .wav "]


def write_odd_names(files: dict[str, bytes]) -> Iterator[str]:
    """A valid WAV under each odd name in the current folder, and a garbage file under it in junk/;
    yields the relative names (skipping any the file system refuses)."""
    os.mkdir("junk")
    for raw in ODD_NAMES:
        for path, data in ((raw, files["pcm16.wav"]), (b"junk/" + raw, b"\x00junk" * 99)):
            try:
                with open(path, "wb") as out:
                    out.write(data)
            except OSError:
                continue
            yield os.fsdecode(path)


# --- the check ------------------------------------------------------------------------------


def check_error(error: AudioError, name: str) -> None:
    message = str(error)
    assert "\n" not in message and message.startswith(f"{name}: "), repr(message)
    message.encode("utf-8")  # printable


def check_one(path: str, decode: Callable[[str], np.ndarray]) -> str:
    """Run every entry point on ``path``; returns "decoded", "partial" or "refused"."""
    name = describe(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            wave = decode(path)
        except AudioError as error:
            check_error(error, name)
            outcome = "refused"
        else:
            assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) and np.isfinite(wave).all(), name
            outcome = "decoded"
    messages = [str(w.message) for w in caught if issubclass(w.category, TruncatedAudioWarning)]
    assert len(messages) <= 1 and all("\n" not in m and m.startswith(f"{name}: ") for m in messages), messages
    if messages and outcome == "decoded":
        outcome = "partial"
    for call in (lambda: audio_info(path), lambda: read_audio(path, max_seconds=2.0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncatedAudioWarning)
            try:
                call()
            except AudioError as error:
                check_error(error, name)
    return outcome


DECODERS = [
    lambda path: load_audio(path, TARGET_RATE),
    lambda path: np.concatenate(list(stream_audio(path, TARGET_RATE))),
    lambda path: load_audio(path, 44100, msclap_compat=True),
]


def test_malformed_files_decode_or_fail_cleanly_in_bounded_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # odd names are given relative: "-leading-dash.wav", ".wav"
    rng = np.random.default_rng(SEED)
    files = valid_files(rng)
    cases = {**files, **header_lies(files), **truncations(files, rng), **damaged(files, rng), **odd_codecs(rng)}
    paths = []
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    paths += list(write_odd_names(files))
    outcomes: dict[str, list[str]] = {}
    tracemalloc.start()
    try:
        for index, path in enumerate(paths):
            outcome = check_one(path, DECODERS[index % len(DECODERS)])
            outcomes.setdefault(outcome, []).append(os.path.basename(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"peak {peak / 2**20:.0f} MB"
    assert len(paths) > 150
    assert {"decoded", "partial", "refused"} <= set(outcomes)  # the fuzzing reaches every outcome
    assert set(files) <= set(outcomes["decoded"])  # the valid files decode without a warning
    assert "wav_tag_4660.wav" in outcomes["refused"] and "wav_rate_1.wav" in outcomes["refused"]
