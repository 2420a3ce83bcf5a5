"""Length policies of clapkit.audio.windows: msclap tiling, deterministic windows, streaming."""
import math
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch
from parity import parity_inputs

import clapkit.audio.io as audio_io
from clapkit.audio import (
    POLICIES,
    AudioError,
    fill,
    fit_length,
    iter_windows,
    load_audio,
    tile,
)

RAMP = np.arange(25, dtype=np.float32)  # sample value == sample index, so a window shows where it starts


def starts(windows: np.ndarray) -> list[int]:
    return [int(w[0]) for w in windows]


def noise_file(path, seconds: float, rate: int = 48000, channels: int = 2, seed: int = 0):
    wave = np.random.default_rng(seed).uniform(-0.5, 0.5, (round(seconds * rate), channels)).astype(np.float32)
    sf.write(path, wave, rate, subtype="FLOAT")
    return path


# --- tiling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2023", "2022"])
def test_short_clips_are_tiled_like_msclap(version):
    inputs = parity_inputs(version)
    target = int(inputs["duration_s"]) * int(inputs["sample_rate"])
    for name, expected in zip(inputs["clip_names"], inputs["tiled"]):
        for policy in POLICIES:
            out = fit_length(inputs[f"raw_{name}"], target, policy)
            assert out.shape == (1, target) and out.dtype == np.float32
            np.testing.assert_array_equal(out[0], expected)


@pytest.mark.parametrize("length,target", [(1, 7), (3, 10), (7, 7), (4, 10), (9, 10)])
def test_tile_is_torch_repeat_then_cut(length, target):
    wave = torch.randn(length)
    expected = wave.repeat(math.ceil(target / length))[:target]  # msclap's load_audio_into_tensor
    np.testing.assert_array_equal(tile(wave.numpy(), target), expected.numpy())


# --- long-clip policies ----------------------------------------------------------------------


@pytest.mark.parametrize("hop,expected", [(None, [0, 10, 15]), (10, [0, 10, 15]), (4, [0, 4, 8, 12, 15]),
                                          (15, [0, 15]), (30, [0, 15])])
def test_sliding_windows_end_with_an_end_aligned_window(hop, expected):
    windows = fit_length(RAMP, 10, hop_samples=hop)
    assert starts(windows) == expected
    for window in windows:
        np.testing.assert_array_equal(window, np.arange(window[0], window[0] + 10))


def test_sliding_adds_no_window_when_the_hops_reach_the_end():
    assert starts(fit_length(np.arange(30, dtype=np.float32), 10)) == [0, 10, 20]
    assert starts(fit_length(np.arange(30, dtype=np.float32), 10, hop_samples=5)) == [0, 5, 10, 15, 20]


def test_center_and_start_crops():
    assert starts(fit_length(RAMP, 10, "center")) == [7]  # (25 - 10) // 2
    assert starts(fit_length(RAMP, 10, "start")) == [0]
    assert starts(fit_length(np.arange(26, dtype=np.float32), 10, "center")) == [8]


def test_random_crop_is_reproducible_and_uniform_over_valid_starts():
    wave = np.arange(1000, dtype=np.float32)
    first = fit_length(wave, 100, "random", rng=123)
    np.testing.assert_array_equal(first, fit_length(wave, 100, "random", rng=123))
    by_seed = {int(fit_length(wave, 100, "random", rng=seed)[0, 0]) for seed in range(200)}
    assert len(by_seed) > 150 and min(by_seed) >= 0 and max(by_seed) <= 900
    generator = np.random.default_rng(7)
    drawn = [int(fit_length(wave, 100, "random", rng=generator)[0, 0]) for _ in range(3)]
    assert drawn == [int(s) for s in np.random.default_rng(7).integers(901, size=3)]
    torch_drawn = [int(fit_length(wave, 100, "random", rng=torch.Generator().manual_seed(5))[0, 0]) for _ in range(2)]
    assert torch_drawn[0] == torch_drawn[1] == int(torch.randint(901, (1,), generator=torch.Generator().manual_seed(5)))
    assert fit_length(wave, 1000, "random", rng=1)[0, 0] == 0  # no slack: the whole clip


def test_policy_argument_errors():
    with pytest.raises(ValueError, match="unknown length policy 'middle'"):
        fit_length(RAMP, 10, "middle")
    with pytest.raises(ValueError, match="clip_samples"):
        fit_length(RAMP, 0)
    with pytest.raises(ValueError, match="hop_samples"):
        fit_length(RAMP, 10, "center", hop_samples=5)
    with pytest.raises(ValueError, match="hop_samples"):
        fit_length(RAMP, 10, hop_samples=0)
    with pytest.raises(ValueError, match="rng is only used by policy='random'"):
        fit_length(RAMP, 10, "sliding", rng=0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        fit_length(np.zeros(0), 10)


# --- sources and streaming -------------------------------------------------------------------


@pytest.mark.parametrize("policy,hop", [("sliding", None), ("sliding", 20000), ("center", None), ("start", None),
                                        ("random", None)])
def test_streamed_file_windows_equal_in_memory_windows(tmp_path, policy, hop):
    path = noise_file(tmp_path / "noise.wav", 5.3)
    clip = 44100
    rng = 11 if policy == "random" else None
    streamed = np.stack(list(iter_windows(path, 44100, clip, policy=policy, hop_samples=hop, rng=rng)))
    wave, rate = sf.read(path, dtype="float32")
    in_memory = fit_length(load_audio(wave.T, 44100, source_rate=rate), clip, policy, hop_samples=hop, rng=rng)
    assert streamed.shape == in_memory.shape and streamed.dtype == np.float32
    np.testing.assert_allclose(streamed, in_memory, rtol=0, atol=1e-6)  # soxr stream vs one-shot; measured 0.0
    expected_windows = {"sliding": 6 if hop is None else 11}.get(policy, 1)
    assert len(streamed) == expected_windows


def test_array_sources_and_msclap_compat_stereo_tiling():
    left, right = np.full(3000, 0.25, np.float32), np.full(3000, -0.5, np.float32)
    wave = np.stack([left, right])  # (channels, time), for numpy and torch alike
    compat = list(iter_windows(wave, 8000, 8000, source_rate=8000, msclap_compat=True))
    np.testing.assert_array_equal(compat, [tile(np.concatenate([left, right]), 8000)])
    mixed = list(iter_windows(torch.from_numpy(wave), 8000, 8000, source_rate=8000))
    np.testing.assert_array_equal(mixed, [np.full(8000, -0.125, np.float32)])


def test_overlapping_windows_are_independent_copies(tmp_path):
    path = noise_file(tmp_path / "noise.wav", 2.0, rate=44100, channels=1)
    windows = list(iter_windows(path, 44100, 44100, hop_samples=22050))
    reference = [w.copy() for w in windows]
    windows[0][:] = 0  # a caller normalising in place must not change the next window
    np.testing.assert_array_equal(windows[1], reference[1])


def test_start_policy_stops_reading_early(tmp_path):
    path = noise_file(tmp_path / "tail_corrupt.wav", 60.0, rate=8000, channels=1)
    data = bytearray(path.read_bytes())
    data[-4 * 8000:] = np.full(8000, np.nan, np.float32).tobytes()  # NaN in the last second
    path.write_bytes(bytes(data))
    window = next(iter_windows(path, 8000, 7 * 8000, policy="start"))
    assert np.isfinite(window).all()
    with pytest.raises(AudioError, match="NaN or infinite"):
        list(iter_windows(path, 8000, 7 * 8000))


def test_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.flac"
    with pytest.raises(AudioError, match=f"^{missing}: file not found$"):
        list(iter_windows(missing, 44100, 1000))
    with pytest.raises(AudioError, match="^array #3: contains NaN"):
        iter_windows(np.array([0.0, np.nan]), 8000, 100, source_rate=8000, name="array #3")


def test_long_file_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "three_minutes.flac"
    rate, minutes, block = 48000, 3, 10 * 48000
    ramp = np.sin(2 * np.pi * 440 * np.arange(block) / rate).astype(np.float32)
    with sf.SoundFile(path, "w", rate, 2, format="FLAC") as out:
        for _ in range(minutes * 6):
            out.write(np.stack([ramp, -0.5 * ramp], axis=1))
    clip = 7 * 44100
    tracemalloc.start()
    count = sum(1 for _ in iter_windows(path, 44100, clip))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == math.ceil(minutes * 60 / 7)
    decoded_bytes = minutes * 60 * rate * 2 * 4  # 69 MB if the file were decoded whole
    assert peak < 4 * clip * 4 + 8 * audio_io.BLOCK_FRAMES * 2 * 4 < decoded_bytes / 5


@pytest.mark.slow
def test_hour_long_stereo_file_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "hour.flac"
    rate, block = 48000, 60 * 48000
    ramp = (0.3 * np.sin(2 * np.pi * 440 * np.arange(block) / rate)).astype(np.float32)
    with sf.SoundFile(path, "w", rate, 2, format="FLAC") as out:
        for _ in range(60):
            out.write(np.stack([ramp, -ramp], axis=1))
    clip = 7 * 44100
    tracemalloc.start()
    count = sum(1 for _ in iter_windows(path, 44100, clip))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == math.ceil(3600 / 7)
    assert peak < 4 * clip * 4 + 8 * audio_io.BLOCK_FRAMES * 2 * 4  # ~10 MB, vs 1.4 GB decoded whole


# --- LAION's filling and whole clips -------------------------------------------------------------


def test_repeatpad_repeats_whole_copies_then_pads_with_silence():
    wave = np.arange(1, 4, dtype=np.float32)
    assert fill(wave, 8, "repeatpad").tolist() == [1, 2, 3, 1, 2, 3, 0, 0]
    assert fill(wave, 8, "pad").tolist() == [1, 2, 3, 0, 0, 0, 0, 0]
    assert fill(wave, 8, "repeat").tolist() == [1, 2, 3, 1, 2, 3, 1, 2]
    assert fit_length(wave, 8, "sliding", fill="repeatpad")[0].tolist() == [1, 2, 3, 1, 2, 3, 0, 0]


def test_whole_policy_keeps_a_long_clip_whole_and_fills_a_short_one(tmp_path):
    assert fit_length(RAMP, 10, "whole").shape == (1, 25)
    assert fit_length(RAMP[:4], 10, "whole", fill="pad")[0].tolist() == [0, 1, 2, 3, 0, 0, 0, 0, 0, 0]
    path = noise_file(tmp_path / "long.wav", 1.5, rate=8000, channels=1)
    streamed = list(iter_windows(str(path), 8000, 8000, policy="whole"))
    assert len(streamed) == 1 and len(streamed[0]) == 12000


def test_an_unknown_fill_is_refused():
    with pytest.raises(ValueError, match="unknown fill 'zeros'"):
        fit_length(RAMP, 10, fill="zeros")
