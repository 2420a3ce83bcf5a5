"""The contrastive losses (``clapkit.train.loss``), checked against explicit references.

- ``ClipLoss``: the mean of the audio->text and text->audio cross-entropies over the batch, with the
  logit scale capped at 100; pairs with equal caption ids are not each other's negatives.
- ``SigLipLoss``: ``-1/B Σ_ij log σ(z_ij (scale·cos_ij + bias))``, z = +1 for own pairs and equal
  caption ids.
- Data-parallel training (gloo, DDP, 2 ranks, even and uneven slices) moves the weights exactly as
  one process on the whole batch, and every rank reports the single-process loss.
"""
from __future__ import annotations

import math
import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from torch import nn

from clapkit.errors import UsageError
from clapkit.train.loss import (
    ClipLoss,
    SigLipLoss,
    build_loss,
    caption_ids,
    gather_no_grad,
    gather_with_grad,
)


# ---- explicit references -------------------------------------------------------------------------
def cosines(audio: torch.Tensor, text: torch.Tensor) -> list[list[float]]:
    def unit(v):
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v]

    a = [unit(row.tolist()) for row in audio]
    t = [unit(row.tolist()) for row in text]
    return [[sum(x * y for x, y in zip(ai, tj)) for tj in t] for ai in a]


def reference_clip(audio, text, scale: float, ids=None, text_scale: float | None = None) -> float:
    """Cross-entropy written out: row i's softmax runs over its own pair and every j whose caption
    differs; the two directions averaged (text->audio scaled by ``text_scale`` when given)."""
    text_scale = scale if text_scale is None else text_scale
    cos = cosines(audio, text)
    n = len(cos)
    ids = list(range(n)) if ids is None else list(ids)

    def direction(logit):  # logit(i, j): row i scored against column j
        total = 0.0
        for i in range(n):
            columns = [j for j in range(n) if j == i or ids[j] != ids[i]]
            total += -logit(i, i) + math.log(sum(math.exp(logit(i, j)) for j in columns))
        return total / n

    return (direction(lambda i, j: scale * cos[i][j]) + direction(lambda i, j: text_scale * cos[j][i])) / 2


def reference_siglip(audio, text, scale: float, bias: float, ids=None) -> float:
    cos = cosines(audio, text)
    n = len(cos)
    ids = list(range(n)) if ids is None else list(ids)
    total = 0.0
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j or ids[i] == ids[j] else -1.0
            total += math.log(1 / (1 + math.exp(-z * (scale * cos[i][j] + bias))))
    return -total / n


def batch(n: int = 5, dim: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, dim, generator=g, dtype=torch.float64),
            torch.randn(n, dim, generator=g, dtype=torch.float64))


# ---- ClipLoss ------------------------------------------------------------------------------------
def test_clip_loss_is_the_symmetric_cross_entropy():
    audio, text = batch()
    loss = ClipLoss()(audio, text, torch.tensor(7.0, dtype=torch.float64))
    assert loss.shape == ()
    assert loss.item() == pytest.approx(reference_clip(audio, text, 7.0), rel=1e-12)
    # Symmetric: swapping the sides gives the same loss; the features need no normalising first.
    swapped = ClipLoss()(3 * text, 0.5 * audio, torch.tensor(7.0, dtype=torch.float64))
    torch.testing.assert_close(swapped, loss, rtol=1e-12, atol=0)


def test_a_second_logit_scale_scales_the_text_to_audio_direction():
    audio, text = batch()
    loss = ClipLoss()(audio, text, torch.tensor(7.0, dtype=torch.float64),
                      logit_scale_text=torch.tensor(3.0, dtype=torch.float64))
    assert loss.item() == pytest.approx(reference_clip(audio, text, 7.0, text_scale=3.0), rel=1e-12)
    assert loss.item() != pytest.approx(reference_clip(audio, text, 7.0), rel=1e-6)


def test_clip_loss_gradients_pass_gradcheck():
    audio, text = batch(n=3, dim=4)
    scale = torch.tensor(5.0, dtype=torch.float64)
    ids = torch.tensor([7, 8, 7])
    inputs = tuple(x.clone().requires_grad_() for x in (audio, text, scale))
    assert torch.autograd.gradcheck(lambda a, t, s: ClipLoss()(a, t, s), inputs)
    assert torch.autograd.gradcheck(lambda a, t, s: ClipLoss()(a, t, s, caption_ids=ids), inputs)


def test_identical_captions_are_not_negatives_of_each_other():
    audio, text = batch(n=5)
    text[2] = text[0]  # identical captions, identical text features: as in training
    scale = torch.tensor(10.0, dtype=torch.float64)
    ids = caption_ids(["a dog barks", "rain", "a dog barks", "a car passes", "wind"])
    assert ids[0] == ids[2] and len(set(ids.tolist())) == 4
    masked = ClipLoss()(audio, text, scale, caption_ids=ids)
    # Reference: pairs (0, 2) and (2, 0) removed from both directions' softmax.
    assert masked.item() == pytest.approx(reference_clip(audio, text, 10.0, ids.tolist()), rel=1e-12)
    unmasked = ClipLoss()(audio, text, scale)
    assert abs(masked.item() - unmasked.item()) > 1e-3
    # All-distinct ids are the same as no ids.
    distinct = ClipLoss()(audio, text, scale, caption_ids=torch.arange(5))
    torch.testing.assert_close(distinct, unmasked, rtol=1e-12, atol=0)


def test_logit_scale_above_100_behaves_as_100():
    audio, text = batch()
    log_scale = torch.tensor(math.log(150.0), dtype=torch.float64, requires_grad=True)
    loss = ClipLoss()(audio, text, log_scale.exp())
    assert loss.item() == pytest.approx(ClipLoss()(audio, text, torch.tensor(100.0, dtype=torch.float64)).item(),
                                        rel=1e-12)
    assert loss.item() == pytest.approx(reference_clip(audio, text, 100.0), rel=1e-12)
    loss.backward()
    assert log_scale.grad == 0  # capped: the log-scale gets no push upwards
    below = ClipLoss()(audio, text, torch.tensor(50.0, dtype=torch.float64))
    assert below.item() == pytest.approx(reference_clip(audio, text, 50.0), rel=1e-12)


# ---- SigLipLoss ----------------------------------------------------------------------------------
def test_siglip_loss_matches_the_pairwise_sigmoid_reference():
    audio, text = batch(n=5)
    scale = torch.tensor(10.0, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-10.0, dtype=torch.float64, requires_grad=True)
    loss = SigLipLoss()(audio, text, scale, bias)
    assert loss.item() == pytest.approx(reference_siglip(audio, text, 10.0, -10.0), rel=1e-12)
    loss.backward()
    assert bias.grad != 0 and scale.grad != 0
    ids = torch.tensor([3, 1, 3, 4, 5])
    with_ids = SigLipLoss()(audio, text, scale, bias, caption_ids=ids)
    assert with_ids.item() == pytest.approx(reference_siglip(audio, text, 10.0, -10.0, ids.tolist()), rel=1e-12)
    assert abs(with_ids.item() - loss.item()) > 1e-3
    capped = SigLipLoss()(audio, text, torch.tensor(300.0, dtype=torch.float64), bias)
    assert capped.item() == pytest.approx(reference_siglip(audio, text, 100.0, -10.0), rel=1e-12)


def test_siglip_loss_gradients_pass_gradcheck():
    audio, text = batch(n=3, dim=4)
    inputs = tuple(x.clone().requires_grad_() for x in
                   (audio, text, torch.tensor(5.0, dtype=torch.float64), torch.tensor(-2.0, dtype=torch.float64)))
    ids = torch.tensor([1, 2, 1])
    assert torch.autograd.gradcheck(lambda a, t, s, b: SigLipLoss()(a, t, s, b, caption_ids=ids), inputs)


# ---- build_loss, caption_ids, single-process gathers --------------------------------------------
def test_build_loss_names_the_known_losses():
    assert isinstance(build_loss("clip"), ClipLoss)
    assert isinstance(build_loss("sigmoid"), SigLipLoss)
    with pytest.raises(UsageError, match="'siglip'.*clip, sigmoid"):
        build_loss("siglip")


def test_caption_ids_are_stable_63_bit_hashes():
    ids = caption_ids(["a dog barks", "rain", "a dog barks", ""])
    assert ids.dtype == torch.long and ids.shape == (4,)
    assert ids[0] == ids[2] and len(set(ids.tolist())) == 3
    assert all(0 <= i < 2 ** 63 for i in ids.tolist())
    # Pinned: the same in every process and run (Python's hash() is salted per process).
    assert caption_ids(["a"]).item() == 2340832890917691671
    assert caption_ids([]).shape == (0,)
    with pytest.raises(UsageError, match="strings"):
        caption_ids(["ok", 3])


def test_gathers_return_the_local_tensor_without_torch_distributed():
    t = torch.randn(3, 2)
    assert gather_with_grad(t) is t
    ids = torch.arange(3)
    assert gather_no_grad(ids) is ids


def test_mismatched_batches_are_usage_errors():
    with pytest.raises(UsageError, match="audio features"):
        ClipLoss()(torch.randn(3, 4), torch.randn(2, 4), torch.tensor(10.0))
    with pytest.raises(UsageError, match="caption_ids"):
        SigLipLoss()(torch.randn(3, 4), torch.randn(3, 4), torch.tensor(10.0), torch.tensor(-10.0),
                     caption_ids=torch.arange(2))


# ---- data-parallel training ----------------------------------------------------------------------
WORLD_SIZE = 2
GLOBAL_BATCH = 8
STEPS = 3
LEARNING_RATE = 0.5
SPLITS = ((4, 4), (5, 3))
# Duplicates in every step: within a rank's slice (0, 3) and across ranks (2, 6).
IDS = torch.tensor([10, 11, 12, 10, 13, 14, 12, 15])


class TinyClap(nn.Module):
    """Two Linear towers, a learnt log-scale (1,) and, for SigLIP, a learnt bias: the CLAP contract."""

    def __init__(self, sigmoid: bool, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.audio = nn.Linear(6, 4)
        self.text = nn.Linear(5, 4)
        self.logit_scale = nn.Parameter(torch.full((1,), math.log(10.0) if sigmoid else math.log(1 / 0.07)))
        self.logit_bias = nn.Parameter(torch.full((1,), -10.0)) if sigmoid else None
        self.double()

    def forward(self, audio: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"audio_features": self.audio(audio), "text_features": self.text(text),
               "logit_scale": self.logit_scale.exp().squeeze(0)}
        if self.logit_bias is not None:
            out["logit_bias"] = self.logit_bias.squeeze(0)
        return out


def step_batch(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    return (torch.randn(GLOBAL_BATCH, 6, generator=g, dtype=torch.float64),
            torch.randn(GLOBAL_BATCH, 5, generator=g, dtype=torch.float64), IDS.roll(step))


def compute_loss(loss_fn: nn.Module, out: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    extra = (out["logit_bias"],) if "logit_bias" in out else ()
    return loss_fn(out["audio_features"], out["text_features"], out["logit_scale"], *extra, caption_ids=ids)


def train(name: str, model: nn.Module, forward: nn.Module, rows: slice) -> list[float]:
    """``STEPS`` SGD steps on rows ``rows`` of each step's global batch; the loss values."""
    loss_fn = build_loss(name)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    losses = []
    for step in range(STEPS):
        audio, text, ids = step_batch(step)
        loss = compute_loss(loss_fn, forward(audio[rows], text[rows]), ids[rows])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def _distributed_worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE, timeout=timedelta(seconds=60))
    try:
        results = {}
        for sizes in SPLITS:
            start = sum(sizes[:rank])
            rows = slice(start, start + sizes[rank])
            # gather_with_grad on uneven slices: the concatenation, and each rank's slice gets the
            # sum over ranks of the gradients of its copy.
            full = torch.arange(GLOBAL_BATCH * 2, dtype=torch.float64).reshape(GLOBAL_BATCH, 2)
            local = full[rows].clone().requires_grad_()
            gathered = gather_with_grad(local)
            weights = torch.linspace(-1, 1, GLOBAL_BATCH * 2, dtype=torch.float64).reshape(GLOBAL_BATCH, 2)
            ((rank + 1) * weights * gathered).sum().backward()
            results[("gather", sizes)] = (gathered.detach(), local.grad, gather_no_grad(IDS[rows]))
            for name in ("clip", "sigmoid"):
                # Each rank starts from its own weights: DDP broadcasts rank 0's (seed 0).
                model = TinyClap(name == "sigmoid", seed=rank)
                losses = train(name, model, DistributedDataParallel(model), rows)
                results[(name, sizes)] = (losses, {n: p.detach().clone() for n, p in model.named_parameters()})
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """Both ranks' results: one spawn for every loss and split."""
    import torch.multiprocessing as mp

    out_dir = tmp_path_factory.mktemp("ddp_loss")
    mp.start_processes(_distributed_worker, args=(free_port(), str(out_dir)), nprocs=WORLD_SIZE,
                       start_method="spawn")
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


@pytest.mark.parametrize("sizes", SPLITS, ids=lambda s: f"{s[0]}+{s[1]}")
def test_gather_with_grad_concatenates_uneven_slices_and_sums_gradients(ranks, sizes):
    full = torch.arange(GLOBAL_BATCH * 2, dtype=torch.float64).reshape(GLOBAL_BATCH, 2)
    weights = torch.linspace(-1, 1, GLOBAL_BATCH * 2, dtype=torch.float64).reshape(GLOBAL_BATCH, 2)
    for rank, results in enumerate(ranks):
        gathered, grad, ids = results[("gather", sizes)]
        torch.testing.assert_close(gathered, full, rtol=0, atol=0)
        torch.testing.assert_close(ids, IDS, rtol=0, atol=0)
        start = sum(sizes[:rank])
        # Rank r's loss weighs the gathered tensor by (r + 1): the slice's gradient is (1 + 2)·w.
        torch.testing.assert_close(grad, 3 * weights[start:start + sizes[rank]], rtol=0, atol=0)


@pytest.mark.parametrize("sizes", SPLITS, ids=lambda s: f"{s[0]}+{s[1]}")
@pytest.mark.parametrize("name", ["clip", "sigmoid"])
def test_ddp_training_equals_one_process_on_the_whole_batch(ranks, name, sizes):
    model = TinyClap(name == "sigmoid", seed=0)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    expected_losses = train(name, model, model, slice(0, GLOBAL_BATCH))
    expected = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert all((expected[n] - initial[n]).abs().max() > 1e-4 for n in expected), "every parameter should move"
    for rank, results in enumerate(ranks):
        losses, parameters = results[(name, sizes)]
        assert losses == pytest.approx(expected_losses, rel=0, abs=1e-9), f"rank {rank}'s loss values"
        assert parameters.keys() == expected.keys()
        for n, value in expected.items():
            torch.testing.assert_close(parameters[n], value, rtol=0, atol=1e-6, msg=f"rank {rank}: {n}")
