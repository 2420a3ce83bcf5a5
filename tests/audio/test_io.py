"""Decoding, channel handling, resampling and input errors of clapkit.audio.io."""
import errno
import fractions
import io
import os
import struct
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from shared_data import require

import clapkit.audio.io as audio_io
from clapkit.audio import AudioError, load_audio, stream_audio
from clapkit.audio.io import (
    AudioInfo,
    TruncatedAudioWarning,
    audio_info,
    describe,
    read_audio,
)


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(round(rate * seconds)) / rate)).astype(np.float32)


def stereo(rate: int, seconds: float) -> np.ndarray:
    """(time, 2): 440 Hz on the left, 660 Hz on the right."""
    return np.stack([tone(440, rate, seconds), tone(660, rate, seconds, 0.25)], axis=1)


def peak_hz(wave: np.ndarray, rate: int, low: float = 0, high: float = np.inf) -> float:
    """The strongest frequency of ``wave`` within [low, high] Hz."""
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    freqs = np.fft.rfftfreq(len(wave), 1 / rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return float(freqs[np.argmax(spectrum)])


def write_with_pyav(path: Path, wave: np.ndarray | None, rate: int, codec: str = "aac", video: bool = False) -> Path:
    """Encode (time, channels) float32 audio and/or a few black video frames with PyAV."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as out:
        if video:
            picture = out.add_stream("mpeg4", rate=10)
            picture.width = picture.height = 32
            picture.pix_fmt = "yuv420p"
        if wave is not None:
            sound = out.add_stream(codec, rate=rate, layout="stereo" if wave.shape[1] == 2 else "mono")
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave.T), format="fltp", layout=sound.layout.name)
            frame.sample_rate, frame.pts, frame.time_base = rate, 0, fractions.Fraction(1, rate)
            for packet in [*sound.encode(frame), *sound.encode(None)]:
                out.mux(packet)
        if video:
            for index in range(5):
                image = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
                image = image.reformat(format="yuv420p")
                image.pts, image.time_base = index, fractions.Fraction(1, 10)
                for packet in picture.encode(image):
                    out.mux(packet)
            for packet in picture.encode():
                out.mux(packet)
    return path


def assert_audio_error(call, name: str, *causes: str) -> str:
    with pytest.raises(AudioError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{name}: "), message
    for cause in causes:
        assert cause in message, message
    return message


# --- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_24"), ("AIFF", "PCM_16")])
def test_lossless_files_decode_exactly(tmp_path, fmt, subtype):
    wave = stereo(44100, 0.5)
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, wave, 44100, format=fmt, subtype=subtype)
    stored, _ = sf.read(path, dtype="float32")
    decoded = load_audio(path, 44100)
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, (stored[:, 0] + stored[:, 1]) / np.float32(2))
    assert np.abs(decoded - wave.mean(axis=1)).max() < 2e-4  # only the file's quantisation


@pytest.mark.parametrize("fmt,subtype,ext", [("OGG", "VORBIS", "ogg"), ("OGG", "OPUS", "opus"),
                                             ("MP3", "MPEG_LAYER_III", "mp3")])
def test_lossy_files_decode_through_soundfile(tmp_path, fmt, subtype, ext):
    if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"this libsndfile cannot write {fmt}/{subtype}")
    path = tmp_path / f"clip.{ext}"
    sf.write(path, np.stack([tone(1000, 48000, 1.0)] * 2, axis=1), 48000, format=fmt, subtype=subtype)
    decoded = load_audio(path, 44100)
    assert decoded.dtype == np.float32
    assert abs(len(decoded) - 44100) < 2500  # codec priming / padding
    assert abs(peak_hz(decoded, 44100) - 1000) < 5
    assert abs(np.sqrt(np.mean(decoded[5000:-5000] ** 2)) - 0.5 / np.sqrt(2)) < 0.03


@pytest.mark.parametrize("name,video", [("clip.m4a", False), ("movie.mp4", True)])
def test_pyav_decodes_aac_and_the_audio_of_a_video(tmp_path, name, video):
    path = write_with_pyav(tmp_path / name, stereo(48000, 1.0), 48000, video=video)
    with pytest.raises(sf.LibsndfileError):
        sf.info(path)  # so this really is the PyAV path
    decoded = load_audio(path, 44100)
    assert decoded.dtype == np.float32
    assert abs(len(decoded) - 44100) < 2500
    assert abs(peak_hz(decoded, 44100, 300, 550) - 440) < 3 and abs(peak_hz(decoded, 44100, 550, 800) - 660) < 3
    with open(path, "rb") as handle:  # file objects go through PyAV too
        np.testing.assert_array_equal(load_audio(handle, 44100), decoded)


def test_pyav_stream_is_block_regrouped_and_bounded(tmp_path):
    path = write_with_pyav(tmp_path / "long.m4a", stereo(48000, 30.0), 48000)
    chunks = list(stream_audio(path, 44100))
    assert len(chunks) > 10 and max(len(c) for c in chunks) < 2 * audio_io.BLOCK_FRAMES
    tracemalloc.start()
    for _ in stream_audio(path, 44100):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    block_bytes = audio_io.BLOCK_FRAMES * 2 * 4
    assert peak < 8 * block_bytes < 30 * 48000 * 2 * 4 / 2  # a few blocks, not the 11.5 MB decoded file


def test_file_objects_bytes_and_unseekable_streams(tmp_path):
    path = tmp_path / "clip.flac"
    sf.write(path, stereo(22050, 0.3), 22050)
    expected = load_audio(path, 44100)
    data = path.read_bytes()

    class Unseekable(io.RawIOBase):
        def __init__(self):
            self.inner = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            return self.inner.readinto(buffer)

    with open(path, "rb") as handle:
        handle.read(100)  # file objects are read from their start
        np.testing.assert_array_equal(load_audio(handle, 44100), expected)
    np.testing.assert_array_equal(load_audio(io.BytesIO(data), 44100), expected)
    np.testing.assert_array_equal(load_audio(data, 44100), expected)
    np.testing.assert_array_equal(load_audio(Unseekable(), 44100), expected)
    np.testing.assert_array_equal(load_audio(Unseekable(), 44100, msclap_compat=True),  # one pass per channel
                                  load_audio(path, 44100, msclap_compat=True))


# --- resampling -----------------------------------------------------------------------------


@pytest.mark.parametrize("source_rate,freq", [(48000, 1000), (8000, 500), (192000, 3000), (22050, 5000)])
def test_resampling_keeps_the_tone(source_rate, freq):
    out = load_audio(tone(freq, source_rate, 0.5), 44100, source_rate=source_rate)
    assert len(out) == round(0.5 * 44100)
    expected = tone(freq, 44100, 0.5)
    assert np.abs(out - expected)[2000:-2000].max() < 2e-3


def test_same_rate_is_passed_through_untouched():
    wave = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    out = load_audio(wave, 44100, source_rate=44100)
    np.testing.assert_array_equal(out, wave)
    out[0] = 123.0
    assert wave[0] != 123.0  # a copy, never the caller's array


def test_streaming_resampler_matches_whole_file_resampling(tmp_path):
    wave = np.random.default_rng(1).uniform(-0.9, 0.9, (300_000, 2)).astype(np.float32)
    path = tmp_path / "noise.wav"
    sf.write(path, wave, 48000, subtype="FLOAT")
    chunks = list(stream_audio(path, 44100))
    assert len(chunks) > 3  # really block by block
    whole = soxr.resample(wave.mean(axis=1), 48000, 44100, quality="HQ")
    streamed = np.concatenate(chunks)
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() <= 1e-6  # measured: 0.0
    np.testing.assert_allclose(load_audio(wave.T, 44100, source_rate=48000), streamed, rtol=0, atol=1e-6)


# --- channels and array layouts ----------------------------------------------------------------


def test_stereo_is_mixed_to_the_mean():
    wave = stereo(44100, 0.2)
    np.testing.assert_array_equal(load_audio(wave.T, 44100, source_rate=44100), (wave[:, 0] + wave[:, 1]) / 2)


def test_eight_channels_and_their_file(tmp_path):
    wave = np.tile(np.arange(1, 9, dtype=np.float32) / 10, (4410, 1))  # channel k is the constant k/10
    np.testing.assert_allclose(load_audio(wave.T, 44100, source_rate=44100), 0.45, atol=1e-6)
    path = tmp_path / "octo.wav"
    sf.write(path, wave, 44100, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path, 44100), 0.45, atol=1e-6)
    assert len(load_audio(path, 44100, msclap_compat=True)) == 8 * 4410


def test_msclap_compat_concatenates_channels_end_to_end(tmp_path):
    wave = stereo(44100, 0.2)
    compat = load_audio(wave.T, 44100, source_rate=44100, msclap_compat=True)
    np.testing.assert_array_equal(compat, np.concatenate([wave[:, 0], wave[:, 1]]))  # torchaudio (C,T).reshape(-1)
    # msclap resamples first, then flattens: each half is that channel resampled on its own
    resampled = load_audio(wave.T, 32000, source_rate=44100, msclap_compat=True)
    left, right = (load_audio(wave[:, c], 32000, source_rate=44100) for c in (0, 1))
    np.testing.assert_allclose(resampled, np.concatenate([left, right]), atol=1e-6)
    path = tmp_path / "stereo.wav"
    sf.write(path, wave, 44100, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, 44100, msclap_compat=True), compat)
    np.testing.assert_allclose(load_audio(path, 32000, msclap_compat=True), resampled, atol=1e-6)


def test_numpy_and_torch_are_both_channels_by_time():
    wave = stereo(16000, 0.25).T  # (2, time)
    from_numpy = load_audio(wave, 44100, source_rate=16000)
    from_torch = load_audio(torch.from_numpy(wave.copy()), 44100, source_rate=16000)
    np.testing.assert_array_equal(from_numpy, from_torch)
    np.testing.assert_array_equal(from_numpy, load_audio(np.ascontiguousarray(wave), 44100, source_rate=16000))
    wave = wave.T
    np.testing.assert_array_equal(load_audio(torch.from_numpy(wave[:, 0]), 44100, source_rate=16000),
                                  load_audio(wave[:, 0], 44100, source_rate=16000))
    bf16 = load_audio(torch.from_numpy(wave[:, 0]).to(torch.bfloat16), 16000, source_rate=16000)
    assert bf16.dtype == np.float32 and np.abs(bf16 - wave[:, 0]).max() < 5e-3


def test_integer_pcm_is_scaled_like_soundfile(tmp_path):
    pcm = np.array([[-32768, 32767], [0, 1], [1234, -4321]], dtype=np.int16)
    path = tmp_path / "pcm.wav"
    sf.write(path, pcm, 8000, subtype="PCM_16")
    from_file = sf.read(path, dtype="float32")[0]
    np.testing.assert_array_equal(load_audio(pcm.T, 8000, source_rate=8000, msclap_compat=True),
                                  from_file.T.reshape(-1))
    np.testing.assert_array_equal(load_audio(np.array([0, 128, 255], np.uint8), 8000, source_rate=8000),
                                  np.array([-1.0, 0.0, 127 / 128], np.float32))


def test_float64_and_loud_values_pass_unclipped():
    loud = np.array([1000.0, -2500.5, 1.0e6], dtype=np.float64)
    out = load_audio(loud, 8000, source_rate=8000)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, loud.astype(np.float32))
    resampled = load_audio(100 * tone(440, 48000, 0.2), 44100, source_rate=48000)
    assert 49 < np.abs(resampled).max() < 51


def test_one_sample():
    np.testing.assert_array_equal(load_audio(np.array([0.25]), 44100, source_rate=44100), [0.25])
    assert len(load_audio(np.array([0.25]), 44100, source_rate=8000)) >= 1
    assert_audio_error(lambda: load_audio(np.array([0.25]), 44100, source_rate=192000), "array", "too short")


def test_one_sample_file_and_192k_file(tmp_path):
    one = tmp_path / "one.wav"
    sf.write(one, np.array([0.5], np.float32), 44100, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(one, 44100), [0.5])
    high = tmp_path / "high.flac"
    sf.write(high, np.stack([tone(2000, 192000, 0.5)] * 2, axis=1), 192000)
    out = load_audio(high, 44100)
    assert len(out) == round(0.5 * 44100) and abs(peak_hz(out, 44100) - 2000) < 3


def test_real_recordings_resample_from_8k():
    paths = sorted(require("data", "fsdd", "recordings").glob("*.wav"))[:5]
    assert len(paths) == 5
    for path in paths:
        native, rate = sf.read(path, dtype="float32")
        assert rate == 8000 and native.ndim == 1
        out = load_audio(path, 44100)
        assert out.dtype == np.float32 and abs(len(out) - len(native) * 44100 / 8000) <= 1
        np.testing.assert_array_equal(out, load_audio(native, 44100, source_rate=8000))
        energy_in, energy_out = np.mean(native.astype(np.float64) ** 2), np.mean(out.astype(np.float64) ** 2)
        assert abs(energy_out / energy_in - 1) < 0.05


# --- errors ---------------------------------------------------------------------------------


def test_missing_empty_and_directory(tmp_path):
    assert_audio_error(lambda: load_audio(tmp_path / "nope.wav", 44100), str(tmp_path / "nope.wav"), "file not found")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert_audio_error(lambda: load_audio(empty, 44100), str(empty), "empty file (0 bytes)")
    assert_audio_error(lambda: load_audio(io.BytesIO(b""), 44100), "<file object>", "empty file")
    assert_audio_error(lambda: load_audio(tmp_path, 44100), str(tmp_path), "directory")


def test_files_that_nothing_decodes(tmp_path):
    sf.write(tmp_path / "good.flac", stereo(44100, 1.0), 44100)
    sf.write(tmp_path / "good.wav", stereo(44100, 1.0), 44100)
    header = tmp_path / "header.wav"
    header.write_bytes((tmp_path / "good.wav").read_bytes()[:20])
    assert_audio_error(lambda: load_audio(header, 44100), str(header), "corrupt or truncated", "libsndfile")
    flac_header = tmp_path / "header.flac"
    flac_header.write_bytes((tmp_path / "good.flac").read_bytes()[:100])
    assert_audio_error(lambda: load_audio(flac_header, 44100), str(flac_header), "corrupt or truncated")


def test_not_audio(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not a sound file\n" * 50)
    assert_audio_error(lambda: load_audio(text, 44100), str(text), "not a recognised audio file", "libsndfile")
    video = write_with_pyav(tmp_path / "silent_movie.mp4", None, 0, video=True)
    assert_audio_error(lambda: load_audio(video, 44100), str(video), "no audio stream")


def test_unsupported_format_without_pyav(tmp_path, monkeypatch):
    path = write_with_pyav(tmp_path / "clip.m4a", stereo(48000, 0.2), 48000)
    monkeypatch.setattr(audio_io, "av", None)
    assert_audio_error(lambda: load_audio(path, 44100), str(path), "unsupported format", "pip install av")


def test_non_finite_samples_are_rejected(tmp_path):
    wave = tone(440, 8000, 0.1)
    for bad in (np.nan, np.inf, -np.inf):
        broken = wave.copy()
        broken[17] = bad
        assert_audio_error(lambda: load_audio(broken, 8000, source_rate=8000, name="array #3"), "array #3",
                           "NaN or infinite")
    path = tmp_path / "nan.wav"
    broken[17] = np.nan
    sf.write(path, broken, 8000, subtype="FLOAT")
    assert_audio_error(lambda: load_audio(path, 44100), str(path), "NaN or infinite")
    assert_audio_error(lambda: load_audio(np.array([1e39]), 8000, source_rate=8000), "array", "NaN or infinite")


def test_zero_length(tmp_path):
    assert_audio_error(lambda: load_audio(np.zeros(0), 44100, source_rate=44100), "array", "zero-length")
    assert_audio_error(lambda: load_audio(torch.zeros(2, 0), 44100, source_rate=44100), "tensor", "zero-length")
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros((0, 2), np.float32), 44100)
    assert_audio_error(lambda: load_audio(path, 44100), str(path), "no audio samples (0 frames)")


@pytest.mark.parametrize("rate", [0, -44100, 44100.5, "44100", True, float("nan")])
def test_invalid_sample_rates(rate):
    wave = tone(440, 8000, 0.1)
    assert_audio_error(lambda: load_audio(wave, 44100, source_rate=rate), "array", "invalid source_rate")
    assert_audio_error(lambda: load_audio(wave, rate, source_rate=8000), "array", "invalid sample_rate")


def test_rate_arguments_must_fit_the_source(tmp_path):
    wave = tone(440, 8000, 0.1)
    assert_audio_error(lambda: load_audio(wave, 44100), "array", "source_rate is required")
    path = tmp_path / "clip.wav"
    sf.write(path, wave, 8000)
    assert_audio_error(lambda: load_audio(path, 44100, source_rate=8000), str(path), "files carry their own rate")
    assert len(load_audio(wave, 44100, source_rate=8000.0)) == round(0.1 * 44100)


def test_bad_array_shapes_and_types():
    assert_audio_error(lambda: load_audio(np.zeros((2, 3, 4)), 8000, source_rate=8000), "array", "1 or 2 dimensions")
    time_first = stereo(8000, 0.1)  # (800, 2): the (time, channels) layout soundfile.read returns
    assert_audio_error(lambda: load_audio(time_first, 8000, source_rate=8000), "array", "800 channels",
                       "(channels, time)", "looks like (time, channels)", "transpose")
    assert_audio_error(lambda: load_audio(torch.from_numpy(time_first), 8000, source_rate=8000), "tensor",
                       "800 channels", "transpose")
    many = np.zeros((audio_io.MAX_ARRAY_CHANNELS, 100), np.float32)  # 64 channels is still audio
    assert len(load_audio(many, 8000, source_rate=8000)) == 100
    for dtype in (bool, complex):
        assert_audio_error(lambda: load_audio(np.ones(5, dtype), 8000, source_rate=8000), "array",
                           "unsupported sample type")
    assert_audio_error(lambda: load_audio(12345, 8000), "<int>", "unsupported source type int")


def test_huge_finite_samples_are_refused_for_files_and_arrays(tmp_path):
    """Float audio scaled like integers (or garbage) would overflow the power spectrum into NaN embeddings."""
    wave = tone(440, 8000, 0.1, amplitude=1.0)
    for scale, shown in ((1e20, "1e+20"), (3.4e38, "3.4e+38")):
        path = tmp_path / f"loud_{shown}.wav"
        sf.write(path, np.clip(wave * np.float32(scale), -3.4e38, 3.4e38), 8000, subtype="FLOAT")
        assert_audio_error(lambda: load_audio(path, 44100), str(path), f"samples reach {shown}",
                           "float audio is expected around [-1, 1] (limit ±1e6)")
        assert_audio_error(lambda: load_audio(wave * scale, 8000, source_rate=8000), "array", f"samples reach {shown}")
    assert_audio_error(lambda: load_audio(torch.tensor([0.0, -2e6]), 8000, source_rate=8000), "tensor", "reach 2e+06")
    assert np.abs(load_audio(np.array([0.0, -1e6]), 8000, source_rate=8000)).max() == 1e6  # the limit itself passes


# --- sample rates -----------------------------------------------------------------------------


def set_wav_header(path: Path, out: Path, *, tag: int | None = None, channels: int | None = None,
                   rate: int | None = None) -> Path:
    """A copy of a PCM WAV with fields of its 'fmt ' chunk overwritten (format tag, channels, rate)."""
    data = bytearray(path.read_bytes())
    fmt = data.find(b"fmt ") + 8
    for offset, size, value in ((0, "<H", tag), (2, "<H", channels), (4, "<I", rate)):
        if value is not None:
            struct.pack_into(size, data, fmt + offset, value)
    out.write_bytes(bytes(data))
    return out


def test_implausible_rates_are_refused(tmp_path):
    sf.write(tmp_path / "clip.wav", tone(440, 8000, 0.5), 8000, subtype="PCM_16")
    one_hz = set_wav_header(tmp_path / "clip.wav", tmp_path / "one_hz.wav", rate=1)  # 131 KB at 1 Hz: 36 hours
    for call in (lambda: load_audio(one_hz, 44100), lambda: audio_info(one_hz), lambda: read_audio(one_hz)):
        assert_audio_error(call, str(one_hz), "header sample rate 1 Hz", "accepted range 1000-768000 Hz")
    wave = tone(440, 8000, 0.1)
    for rate in (999, 768_001):
        assert_audio_error(lambda: load_audio(wave, 44100, source_rate=rate), "array", f"source_rate {rate} Hz",
                           "accepted range")
        assert_audio_error(lambda: load_audio(wave, rate, source_rate=8000), "array", f"sample_rate {rate} Hz")
    assert len(load_audio(wave[:10], 768_000, source_rate=1000)) == 7680  # the limits themselves pass


def test_upsampling_by_a_large_factor_runs_in_bounded_pieces(tmp_path):
    """Each decoded block is resampled in pieces whose output is about BLOCK_FRAMES, not in one call."""
    path = tmp_path / "low.wav"
    sf.write(path, np.random.default_rng(2).uniform(-0.5, 0.5, 20_000).astype(np.float32), 1000, subtype="FLOAT")
    tracemalloc.start()
    longest = total = 0
    for chunk in stream_audio(path, 768_000):
        longest, total = max(longest, len(chunk)), total + len(chunk)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    whole_bytes = 20 * 768_000 * 4  # 61 MB: the one 20,000-frame block resampled in one call
    assert total == 20 * 768_000
    assert longest <= 16 * audio_io.BLOCK_FRAMES  # soxr releases output in its own steps (~620k samples at 768x)
    assert peak < whole_bytes / 8  # measured 5 MB


def test_streaming_in_pieces_still_equals_one_shot_resampling(tmp_path):
    wave = np.random.default_rng(3).uniform(-0.9, 0.9, 200_000).astype(np.float32)
    path = tmp_path / "noise.wav"
    sf.write(path, wave, 8000, subtype="FLOAT")
    chunks = list(stream_audio(path, 48000))
    assert len(chunks) > 10  # 8 kHz -> 48 kHz: pieces of BLOCK_FRAMES / 6 input frames
    streamed, whole = np.concatenate(chunks), soxr.resample(wave, 8000, 48000, quality="HQ")
    assert streamed.shape == whole.shape and np.abs(streamed - whole).max() <= 1e-6


# --- file names and kinds -----------------------------------------------------------------------


def test_file_names_that_are_not_utf8_decode_and_print(tmp_path):
    raw_dir = os.fsencode(tmp_path)
    good, junk = os.fsdecode(raw_dir + b"/caf\xe9.wav"), os.fsdecode(raw_dir + b"/bad\xff name.wav")
    try:
        sf.write(os.fsencode(good), tone(440, 8000, 0.1), 8000)  # soundfile itself cannot take the str name
        Path(junk).write_bytes(b"not audio at all " * 20)
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    np.testing.assert_array_equal(load_audio(good, 8000), sf.read(os.fsencode(good), dtype="float32")[0])
    assert audio_info(good).frames == 800
    message = assert_audio_error(lambda: load_audio(junk, 8000), describe(junk), "not a recognised audio file")
    assert "bad\\xff name.wav: " in message
    message.encode("utf-8")  # printable: no lone surrogates left
    assert describe("two\nlines.wav") == "two\\nlines.wav"


def test_file_kinds_have_their_own_messages(tmp_path):
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    assert_audio_error(lambda: load_audio(loop, 44100), str(loop), "symbolic link loop")
    broken = tmp_path / "broken.wav"
    broken.symlink_to(tmp_path / "gone.wav")
    assert_audio_error(lambda: load_audio(broken, 44100), str(broken), f"broken symbolic link to {tmp_path}/gone.wav")
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.wav"
        os.mkfifo(fifo)
        assert_audio_error(lambda: load_audio(fifo, 44100), str(fifo), "not a regular file (a named pipe)")
    if os.path.exists("/dev/null"):
        assert_audio_error(lambda: load_audio("/dev/null", 44100), "/dev/null",
                           "not a regular file (a character device)")


def test_unreadable_file_is_permission_denied_not_corrupt(tmp_path, monkeypatch):
    path = tmp_path / "locked.wav"
    sf.write(path, tone(440, 8000, 0.1), 8000)

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(audio_io, "open", refuse, raising=False)  # what open() does under chmod 000
    for call in (lambda: load_audio(path, 8000), lambda: audio_info(path)):
        message = assert_audio_error(call, str(path), "permission denied")
        assert "corrupt" not in message


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_chmod_000_file_is_permission_denied(tmp_path):
    path = tmp_path / "locked.wav"
    sf.write(path, tone(440, 8000, 0.1), 8000)
    path.chmod(0)
    try:
        assert_audio_error(lambda: load_audio(path, 8000), str(path), "permission denied")
    finally:
        path.chmod(0o644)


# --- codecs no decoder knows ------------------------------------------------------------------------


def test_wav_with_an_unknown_codec_tag(tmp_path):
    """libsndfile refuses it; PyAV opens it but has no decoder (its stream has no codec context)."""
    sf.write(tmp_path / "clip.wav", tone(440, 8000, 0.2), 8000, subtype="PCM_16")
    odd = set_wav_header(tmp_path / "clip.wav", tmp_path / "odd codec.wav", tag=0x1234)
    for call in (lambda: load_audio(odd, 8000), lambda: audio_info(odd)):
        assert_audio_error(call, str(odd), "unsupported audio codec", "no decoder")


@pytest.mark.parametrize("fields", [{"rate": 0}, {"channels": 0}, {"rate": 4_000_000_000}])
def test_impossible_wav_headers(tmp_path, fields):
    sf.write(tmp_path / "clip.wav", tone(440, 8000, 0.2), 8000, subtype="PCM_16")
    bad = set_wav_header(tmp_path / "clip.wav", tmp_path / "bad.wav", **fields)
    assert_audio_error(lambda: load_audio(bad, 8000), str(bad))


PYAV_FAILURES = {  # exception types PyAV raises on broken input, besides its own FFmpegError family
    "FFmpeg": lambda av: av.error.InvalidDataError(1094995529, "Invalid data found when processing input"),
    "Unicode": lambda av: UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    "Index": lambda av: IndexError(),
    "Runtime": lambda av: RuntimeError("boom"),
}


@pytest.mark.parametrize("kind", PYAV_FAILURES)
def test_any_pyav_failure_is_an_audio_error(tmp_path, monkeypatch, kind):
    av = pytest.importorskip("av")
    path = write_with_pyav(tmp_path / "clip.m4a", stereo(48000, 0.2), 48000)

    def fail(*args, **kwargs):
        raise PYAV_FAILURES[kind](av)

    monkeypatch.setattr(av, "open", fail)
    assert_audio_error(lambda: load_audio(path, 44100), str(path), "not a recognised audio file", "PyAV: ")


# --- truncated and damaged files: decode what is there, warn once -------------------------------


def decode_warnings(call) -> tuple[object, list[str]]:
    """``call()``'s result and the messages of the TruncatedAudioWarnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [str(w.message) for w in caught if issubclass(w.category, TruncatedAudioWarning)]


@pytest.mark.parametrize("cut", ["last 10 bytes", "second half"])
def test_truncated_flac_decodes_what_is_there(tmp_path, cut):
    sf.write(tmp_path / "full.flac", stereo(44100, 3.0), 44100, subtype="PCM_24")
    data = (tmp_path / "full.flac").read_bytes()
    path = tmp_path / "cut.flac"
    path.write_bytes(data[:-10] if cut == "last 10 bytes" else data[: len(data) // 2])
    full = load_audio(tmp_path / "full.flac", 44100)
    decoded, messages = decode_warnings(lambda: load_audio(path, 44100))
    assert len(messages) == 1 and messages[0].startswith(f"{path}: audio data ends early or is damaged")
    assert "\n" not in messages[0] and "of 3.000 s declared" in messages[0]
    assert (len(full) * 0.4 if cut == "second half" else len(full) * 0.98) < len(decoded) < len(full)
    np.testing.assert_array_equal(decoded, full[: len(decoded)])  # exact: libsndfile, then PyAV, same samples
    (frames, rate), messages = decode_warnings(lambda: read_audio(path))
    assert rate == 44100 and frames.shape == (len(decoded), 2) and len(messages) == 1
    assert audio_info(path).frames == len(full)  # the header is intact: it still declares 3 s
    _, messages = decode_warnings(lambda: load_audio(path, 44100, msclap_compat=True))
    assert len(messages) == 1  # one warning for the file, not one per channel pass


FORMATS = [("WAV", "PCM_16", "wav"), ("WAV", "FLOAT", "wav"), ("AIFF", "PCM_16", "aiff"), ("FLAC", "PCM_16", "flac"),
           ("OGG", "VORBIS", "ogg"), ("OGG", "OPUS", "opus"), ("MP3", "MPEG_LAYER_III", "mp3")]


@pytest.mark.parametrize("fmt,subtype,ext", FORMATS)
def test_one_truncation_rule_for_every_format(tmp_path, fmt, subtype, ext):
    """A complete file decodes without a warning; cut to 60 % of its bytes, it decodes the audio that is
    there, with one warning naming it."""
    if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"this libsndfile cannot write {fmt}/{subtype}")
    rate = 48000 if subtype == "OPUS" else 44100
    full_path, cut = tmp_path / f"full.{ext}", tmp_path / f"cut.{ext}"
    sf.write(full_path, stereo(rate, 3.0), rate, format=fmt, subtype=subtype)
    full, messages = decode_warnings(lambda: load_audio(full_path, rate))
    assert messages == []
    data = full_path.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    decoded, messages = decode_warnings(lambda: load_audio(cut, rate))
    assert [m.split(": ")[0] for m in messages] == [str(cut)]
    assert 0.25 * len(full) < len(decoded) < 0.75 * len(full) and np.isfinite(decoded).all()


# --- audio_info and read_audio ------------------------------------------------------------------


def test_audio_info_reads_headers_of_every_decoder(tmp_path):
    sf.write(tmp_path / "clip.wav", stereo(22050, 0.5), 22050, subtype="PCM_16")
    assert audio_info(tmp_path / "clip.wav") == AudioInfo(22050, 2, 11025, 0.5, "WAV", "PCM_16")
    m4a = write_with_pyav(tmp_path / "clip.m4a", stereo(48000, 1.0), 48000)
    info = audio_info(m4a)
    assert (info.sample_rate, info.channels, info.codec) == (48000, 2, "aac") and "m4a" in info.format
    assert abs(info.duration - 1.0) < 0.05 and info.frames == round(info.duration * 48000)
    assert audio_info(m4a.read_bytes()) == info  # bytes and file objects too
    assert_audio_error(lambda: audio_info(tmp_path / "none.wav"), str(tmp_path / "none.wav"), "file not found")


def test_read_audio_is_native_rate_frames_by_channels(tmp_path):
    wave = stereo(22050, 2.0)
    path = tmp_path / "clip.flac"
    sf.write(path, wave, 22050, subtype="PCM_24")
    frames, rate = read_audio(path)
    assert rate == 22050 and frames.dtype == np.float32
    np.testing.assert_array_equal(frames, sf.read(path, dtype="float32")[0])
    first, _ = read_audio(path, max_seconds=0.5)
    np.testing.assert_array_equal(first, frames[:11025])
    assert read_audio(path, max_seconds=1e-9)[0].shape == (1, 2)  # rounded up to a whole frame
    m4a, m4a_rate = read_audio(write_with_pyav(tmp_path / "clip.m4a", wave, 22050), max_seconds=0.25)
    assert m4a_rate == 22050 and m4a.shape == (5513, 2)  # 5512.5 frames, rounded up
    for bad in (0, -1.0, float("nan"), "1"):
        assert_audio_error(lambda: read_audio(path, max_seconds=bad), str(path), "invalid max_seconds")


def test_read_audio_memory_is_bounded_by_max_seconds(tmp_path):
    path = tmp_path / "long.flac"
    block = stereo(48000, 10.0)
    with sf.SoundFile(path, "w", 48000, 2, format="FLAC") as out:
        for _ in range(12):  # two minutes: 46 MB decoded
            out.write(block)
    tracemalloc.start()
    frames, _ = read_audio(path, max_seconds=1.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert frames.shape == (48000, 2) and peak < 4 * 48000 * 2 * 4 + 4 * audio_io.BLOCK_FRAMES * 2 * 4
