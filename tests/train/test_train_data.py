"""Training data: seeded, rank-sharded, resumable batches from manifests and WebDataset shards."""
from __future__ import annotations

import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch

from clapkit.audio.io import load_audio
from clapkit.data.manifest import Clip, write_manifest
from clapkit.data.shards import write_shards
from clapkit.errors import ManifestError, UsageError
from clapkit.train import data as train_data
from clapkit.train.augment import NOISE_SNR_DB, WaveAugment
from clapkit.train.data import TrainData, ValData

RATE, N = 8000, 400  # model rate, clip_samples (50 ms)
CLIPS = 22  # with B=4: 5 steps, a dropped tail of 2


def make_clips(folder, n=CLIPS, bad=()):
    """``n`` WAV clips of 60-150 ms (half at 16 kHz, resampled on the fly), 1-3 captions each, some
    shorter than N (tiled); names in ``bad`` are garbage bytes. Returns the manifest."""
    rng = np.random.default_rng(1234)
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for k in range(n):
        name = f"clip{k:02d}.wav"
        if name in bad:
            (folder / name).write_bytes(b"this is not audio at all " * 40)
        else:
            rate = 16000 if k % 2 else 8000
            frames = int(rate * (0.04 if k % 7 == 0 else rng.uniform(0.06, 0.15)))
            sf.write(folder / name, (rng.standard_normal(frames) * 0.2).astype(np.float32), rate, subtype="PCM_16")
        clips.append(Clip(path=name, captions=[f"clip {k} caption {c}" for c in range(1 + k % 3)], split="train"))
    manifest = folder / "train.jsonl"
    write_manifest(manifest, clips)
    return manifest


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_clips(tmp_path_factory.mktemp("clips"))


def train(sources, **kw):
    args = {"sample_rate": RATE, "clip_samples": N, "global_batch_size": 4, "seed": 7} | kw
    return TrainData(sources if isinstance(sources, list) else [str(sources)], **args)


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.epoch, x.step, x.indices, x.captions, x.failures) == (y.epoch, y.step, y.indices, y.captions, y.failures)
        assert x.waveforms.dtype == torch.float32 and x.waveforms.shape == (len(x.indices), N)
        assert torch.equal(x.waveforms, y.waveforms)


def test_same_seed_same_batches_other_seed_other_order(manifest):
    data = train(manifest)
    first = list(data.batches(0))
    assert_same(first, list(train(manifest).batches(0)))
    other = list(train(manifest, seed=8).batches(0))
    assert [b.indices for b in other] != [b.indices for b in first]


def test_crops_and_captions_are_drawn_per_clip(manifest):
    data = train(manifest)
    folder = manifest.parent
    crops, chosen = {}, {}
    for epoch in range(4):
        for batch in data.batches(epoch):
            for i, wave, caption in zip(batch.indices, batch.waveforms.numpy(), batch.captions):
                clip = data.clips[i]
                assert caption in clip.captions
                chosen.setdefault(i, set()).add(caption)
                crops.setdefault(i, []).append(wave)
                full = load_audio(folder / f"clip{i:02d}.wav", RATE)
                if len(full) > N:  # a random window of the decoded, resampled clip
                    starts = [s for s in range(len(full) - N + 1) if np.array_equal(full[s:s + N], wave)]
                    assert starts, f"clip {i}: crop is not a window of the clip"
                else:  # tiled
                    assert np.array_equal(wave[:len(full)], full)
    assert any(len(c) > 1 for c in chosen.values())  # several captions: the choice varies by epoch
    varied = [i for i, w in crops.items() if len(w) > 1 and any(not np.array_equal(w[0], v) for v in w[1:])]
    assert varied  # the crop of a long clip varies by epoch


def test_an_epoch_visits_every_clip_once_and_epochs_differ(manifest):
    data = train(manifest)
    assert data.steps_per_epoch == CLIPS // 4 == 5
    orders = []
    for epoch in range(2):
        batches = list(data.batches(epoch))
        assert [b.step for b in batches] == list(range(5))
        assert all(len(b) == 4 for b in batches)
        seen = [i for b in batches for i in b.indices]
        assert len(seen) == len(set(seen)) == 20 and set(seen) <= set(range(CLIPS))
        orders.append(seen)
    assert orders[0] != orders[1]


def test_ranks_split_each_global_batch(manifest):
    whole = list(train(manifest).batches(1))
    ranks = [list(train(manifest, rank=r, world_size=2).batches(1)) for r in range(2)]
    for step, batch in enumerate(whole):
        parts = [ranks[r][step] for r in range(2)]
        assert all(len(p) == 2 and p.step == step for p in parts)
        assert not set(parts[0].indices) & set(parts[1].indices)
        assert parts[0].indices + parts[1].indices == batch.indices
        assert parts[0].captions + parts[1].captions == batch.captions
        assert torch.equal(torch.cat([parts[0].waveforms, parts[1].waveforms]), batch.waveforms)


def test_resume_is_the_tail_of_an_uninterrupted_pass(manifest):
    for kw in ({}, {"rank": 1, "world_size": 2}):
        data = train(manifest, **kw)
        whole = list(data.batches(3))
        for k in (0, 2, 4, 5):
            assert_same(list(data.batches(3, start_step=k)), whole[k:])
        assert data.step_indices(3, 2) == whole[2].indices


def test_workers_give_the_same_batches(manifest):
    assert_same(list(train(manifest, workers=2).batches(2, start_step=1)), list(train(manifest).batches(2, start_step=1)))
    val = ValData([str(manifest)], sample_rate=RATE, clip_samples=N, batch_size=5)
    assert_same(list(ValData([str(manifest)], sample_rate=RATE, clip_samples=N, batch_size=5, workers=2).batches()),
                list(val.batches()))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_clip_is_left_out_and_listed(tmp_path, workers):
    manifest = make_clips(tmp_path, n=6, bad={"clip03.wav"})
    data = train(manifest, global_batch_size=6, workers=workers)
    (batch,) = list(data.batches(0))
    assert sorted(batch.indices) == [0, 1, 2, 4, 5] and batch.waveforms.shape == (5, N)
    assert len(batch.captions) == 5
    ((index, name, cause),) = batch.failures
    assert index == 3 and name.endswith("clip03.wav") and cause and "\n" not in cause
    (val,) = list(ValData([str(manifest)], sample_rate=RATE, clip_samples=N, batch_size=8, workers=workers).batches())
    assert val.indices == [0, 1, 2, 4, 5] and [f[0] for f in val.failures] == [3]


def test_shards_and_manifest_give_the_same_clips(tmp_path, monkeypatch):
    manifest = make_clips(tmp_path / "clips", n=12)
    report = write_shards(manifest, str(tmp_path / "shards" / "train-%06d.tar"), max_clips=5)
    assert report.written == 12 and len(report.shards) == 3
    brace = str(tmp_path / "shards" / "train-{000000..000002}.tar")
    glob = str(tmp_path / "shards" / "train-*.tar")

    def by_caption(batches, captions):
        return {tuple(captions[i]): w.numpy().tobytes() for b in batches for i, w in zip(b.indices, b.waveforms)}

    from_manifest = ValData([str(manifest)], sample_rate=RATE, clip_samples=N, batch_size=5)
    from_shards = ValData([brace], sample_rate=RATE, clip_samples=N, batch_size=5)
    assert ".tar:" in from_shards.names[0]
    # decoding reads the tars by seeking to recorded offsets: no tar is opened as a tar again
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: pytest.fail("tar re-opened to read a clip"))
    expected = by_caption(list(from_manifest.batches()), from_manifest.captions)
    assert len(expected) == 12
    assert by_caption(list(from_shards.batches()), from_shards.captions) == expected
    monkeypatch.undo()
    # the same through TrainData, with a glob; shards keep the manifest's order, so even crops agree
    a, b = train(manifest, global_batch_size=6), train(glob, global_batch_size=6)
    assert [c.captions for c in a.clips] == [c.captions for c in b.clips]
    assert_same(list(a.batches(1)), list(b.batches(1)))


def test_errors_are_one_line_and_name_the_input(tmp_path, manifest):
    with pytest.raises(ManifestError, match="nope.jsonl"):
        train(tmp_path / "nope.jsonl")
    with pytest.raises(UsageError, match="matches no shard"):
        train(str(tmp_path / "none-*.tar"))
    (tmp_path / "s-000000.tar").write_bytes(b"")
    with pytest.raises(UsageError, match="1 of 2 shard files not found"):
        train(str(tmp_path / "s-{000000..000001}.tar"))
    with pytest.raises(UsageError, match="not divisible by world_size 3"):
        train(manifest, world_size=3)
    with pytest.raises(UsageError, match="no training data sources"):
        TrainData([], sample_rate=RATE, clip_samples=N, global_batch_size=4, seed=0)
    with pytest.raises(UsageError, match="fewer than global_batch_size"):
        train(manifest, global_batch_size=64)
    with pytest.raises(UsageError, match="rank 2"):
        train(manifest, rank=2, world_size=2)
    with pytest.raises(UsageError, match="start_step"):
        next(train(manifest).batches(0, start_step=6))
    for error in (ManifestError, UsageError):
        try:
            train(tmp_path / "nope.jsonl") if error is ManifestError else train(manifest, world_size=3)
        except error as e:
            assert "\n" not in str(e)


def test_uncaptioned_clips_are_left_out_of_the_index(tmp_path):
    manifest = make_clips(tmp_path, n=5)
    lines = manifest.read_text().splitlines()
    lines[1] = lines[1].replace('"captions": ["clip 1 caption 0", "clip 1 caption 1"]', '"captions": []')
    manifest.write_text("\n".join(lines) + "\n")
    data = train(manifest)
    assert len(data) == 4 and data.uncaptioned == 1
    assert train_data.index_sources([str(manifest)])[1] == 1


def test_a_manifest_split_can_be_selected(tmp_path):
    import json

    from clapkit.train.data import index_sources

    lines = []
    for i, split in enumerate(["train", "val", "train"]):
        sf.write(tmp_path / f"{i}.wav", np.zeros(1600, np.float32), 16000)
        lines.append(json.dumps({"path": f"{i}.wav", "captions": [f"clip {i}"], "split": split}))
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    train, _ = index_sources([f"{tmp_path / 'm.jsonl'}#train"])
    assert [clip.captions for clip in train] == [("clip 0",), ("clip 2",)]
    with pytest.raises(UsageError, match="no clip of the manifest has split 'test'"):
        index_sources([f"{tmp_path / 'm.jsonl'}#test"])


def plain_and_augmented(manifest, off: WaveAugment, on: WaveAugment, **kw) -> tuple[list, list]:
    """Epoch 0's batches without augmentation and with ``on``, after checking that ``off`` (the
    augmentation at 0) changes nothing and that ``on`` gives the same batches twice (seeded)."""
    plain = list(train(manifest, **kw).batches(0))
    assert_same(plain, list(train(manifest, augment=off, **kw).batches(0)))
    augmented = [list(train(manifest, augment=on, **kw).batches(0)) for _ in range(2)]
    assert_same(*augmented)
    return plain, augmented[0]


def test_band_limit_is_seeded_and_off_by_default(tmp_path):
    manifest = make_clips(tmp_path / "clips", n=8)
    plain, limited = plain_and_augmented(manifest, WaveAugment(band_limit=0.0), WaveAugment(band_limit=1.0),
                                         sample_rate=32000)
    assert all(not torch.equal(a.waveforms, b.waveforms) for a, b in zip(plain, limited))


def test_gain_makes_clips_quieter_by_a_seeded_factor_and_is_off_by_default(tmp_path):
    manifest = make_clips(tmp_path / "clips", n=8)
    plain, quieter = plain_and_augmented(manifest, WaveAugment(gain_db=0.0), WaveAugment(gain_db=24.0))
    for before, after in zip(plain, quieter):
        for a, b in zip(before.waveforms, after.waveforms):
            factor = float(b.abs().max() / a.abs().max())
            assert 10 ** (-24 / 20) - 1e-6 <= factor <= 1 + 1e-6
            torch.testing.assert_close(b, a * factor, rtol=1e-5, atol=1e-6)  # the same sound, only quieter
    assert any(not torch.equal(a.waveforms, b.waveforms) for a, b in zip(plain, quieter))


def test_noise_is_added_at_an_snr_within_its_range_and_is_seeded_and_off_by_default(tmp_path):
    manifest = make_clips(tmp_path / "clips", n=8)
    plain, noisy = plain_and_augmented(manifest, WaveAugment(noise=0.0), WaveAugment(noise=1.0))
    low, high = NOISE_SNR_DB
    for before, after in zip(plain, noisy):
        for a, b in zip(before.waveforms.double(), after.waveforms.double()):
            snr = 10 * torch.log10(a.square().mean() / (b - a).square().mean())
            assert low - 0.01 <= float(snr) <= high + 0.01
