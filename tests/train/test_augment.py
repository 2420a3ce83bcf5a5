"""SpecAugment: time and mel-band stripes on the encoder's log-mel input, in training mode only."""
import pytest
import torch
from torch import nn

from clapkit.errors import UsageError
from clapkit.train.augment import SpecAugment, attach


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
