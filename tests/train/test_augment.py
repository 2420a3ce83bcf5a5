"""Training augmentations: a clip's waveform (band-limited, a noise floor, checked ranges) and SpecAugment
(time and mel-band stripes on the encoder's log-mel input, in training mode only)."""
import numpy as np
import pytest
import torch
from torch import nn

from clapkit.errors import UsageError
from clapkit.train.augment import (
    NOISE_SLOPES,
    SpecAugment,
    WaveAugment,
    attach,
    attenuated,
    band_limited,
    noise_bank,
    with_noise,
)


@pytest.mark.parametrize("spec", ["2x50", "2x50,2", "ax1,1x1", "-1x5,1x1", ""])
def test_a_malformed_spec_is_one_line_naming_the_flag(spec):
    with pytest.raises(UsageError, match=r"^--spec-augment: expected TIMExFRAMES,MELxBANDS"):
        SpecAugment.parse(spec)


def test_masks_are_stripes_of_bounded_width_filled_with_the_clips_mean():
    torch.manual_seed(0)
    features = torch.randn(64, 1, 100, 32) * 10 - 40
    augment = SpecAugment.parse("2x10,1x4")
    masked = augment(features)
    changed = masked != features
    for clip in range(64):
        frames = changed[clip, 0].all(dim=1)   # a masked frame is masked across every band
        bands = changed[clip, 0].all(dim=0)
        assert frames.sum() <= 2 * 10 and bands.sum() <= 4
        assert (changed[clip, 0] == (frames[:, None] | bands[None, :])).all()  # nothing outside the stripes
        assert torch.allclose(masked[clip][changed[clip]], features[clip].mean().expand(int(changed[clip].sum())))
    assert changed.any(), "64 clips drew no mask at all"


def test_the_same_seed_draws_the_same_masks():
    features = torch.randn(8, 1, 50, 16)
    augment = SpecAugment.parse("2x10,2x4")
    torch.manual_seed(3)
    first = augment(features)
    torch.manual_seed(3)
    assert torch.equal(augment(features), first)


class Encoder(nn.Module):
    def forward(self, features, is_longer=None):
        return features


def test_the_hook_masks_in_training_mode_only():
    encoder = Encoder()
    handle = attach(encoder, SpecAugment.parse("3x20,3x8"))
    features = torch.randn(4, 1, 60, 16)
    assert torch.equal(encoder.eval()(features), features)
    torch.manual_seed(0)
    assert not torch.equal(encoder.train()(features, None), features)
    handle.remove()
    assert torch.equal(encoder(features), features)


def test_band_limiting_removes_what_a_lower_rate_cannot_hold():
    rate = 32000
    t = np.arange(rate) / rate
    wave = (0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 12000 * t)).astype(np.float32)
    limited = band_limited(wave, rate, np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft(limited))
    assert limited.shape == wave.shape and limited.dtype == np.float32
    assert spectrum[12000] < 0.01 * spectrum[1000]  # 12 kHz is above the Nyquist of 8, 11.025 and 16 kHz
    assert spectrum[1000] > 0.5 * np.abs(np.fft.rfft(wave))[1000]


def test_the_noise_bank_ranges_from_white_to_brown_and_is_the_same_in_every_process():
    bank = noise_bank(16000)
    assert bank.shape == (len(NOISE_SLOPES), 32000) and bank.dtype == np.float32
    np.testing.assert_allclose(bank.std(axis=1), 1.0, rtol=1e-4)
    power = np.abs(np.fft.rfft(bank)) ** 2
    per_octave = np.log10(power[:, 8000:16000].mean(1) / power[:, 1000:2000].mean(1)) * 10 / 3
    np.testing.assert_allclose(per_octave, -3.0103 * np.array(NOISE_SLOPES), atol=0.3)
    noise_bank.cache_clear()
    np.testing.assert_array_equal(noise_bank(16000), bank)  # from a fixed seed, not the process's
    assert not with_noise(np.zeros(100, np.float32), np.random.default_rng(0)).any()  # silence stays


@pytest.mark.parametrize("settings, field", [({"band_limit": 1.5}, "band_limit"), ({"noise": -0.1}, "noise"),
                                            ({"gain_db": -3}, "gain_db"), ({"gain_db": 61}, "gain_db")])
def test_an_augmentation_out_of_range_is_a_usage_error_naming_it(settings, field):
    with pytest.raises(UsageError, match=field):
        WaveAugment(**settings)


def test_an_augmentation_that_is_off_draws_nothing_so_the_others_stay_as_they_were():
    wave = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    alone = attenuated(wave, 24.0, np.random.default_rng(5))
    with_others_off = WaveAugment(band_limit=0.0, gain_db=24.0, noise=0.0)(wave, 16000, np.random.default_rng(5))
    np.testing.assert_array_equal(with_others_off, alone)
