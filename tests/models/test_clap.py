"""The CLAP model contract (``clapkit.models.clap.CLAP``), checked on tiny models built from the
msclap configs.

- ``forward(audio, input_ids, attention_mask, **text_extra)`` returns un-normalised
  ``audio_features`` / ``text_features`` and the exponentiated ``logit_scale``, the same as
  ``encode_audio`` / ``encode_text``.
- Every parameter has a gradient path to the contrastive loss (no classifier heads, no pooler),
  so DDP with ``find_unused_parameters=False`` and FSDP2 ``fully_shard`` train it as it is.
- Derived tensors (mel bank, STFT window, relative-position indices, attention masks, token
  gathers) are non-persistent buffers: never in a checkpoint, always rebuilt.
- Precision is the caller's: the log-mel front end computes float32 whatever the module dtype or
  autocast; everything else follows the module's dtype or the caller's autocast.
- ``ClapPipeline`` never mutates the module it wraps.
"""
from __future__ import annotations

import copy
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clapkit.models.config import ModelConfig, get_config, list_configs, parse_config
from clapkit.models.factory import create_model
from clapkit.pipeline import ClapPipeline

GPT2_TOKENIZER = Path(__file__).resolve().parents[3] / "shared" / "tokenizers" / "gpt2"

# Buffers computed from the constructor arguments: never saved, always present in the module.
DERIVED_BUFFER_NAMES = ("mel_basis", "window", "relative_position_index", "attn_mask")
DERIVED_BUFFER_PREFIXES = ("gather_",)
# Leaf modules that would be parameters with no gradient path in CLAP: HTSAT's tscam classifier
# (and msclap's unused ``head``), CNN14's AudioSet classifier, BERT's pooler.
HEAD_NAMES = {"tscam_conv", "head", "fc_audioset", "pooler"}


# ---- tiny models ---------------------------------------------------------------------------------
def tiny_config(kind: str, *, dropout: bool = True) -> ModelConfig:
    """msclap's 2023 (HTSAT + GPT-2) or 2022 (CNN14 + BERT) config with tiny towers and short clips.

    ``dropout=False`` also turns off projection dropout and HTSAT's stochastic depth, so that a
    forward pass in train mode is deterministic.
    """
    if kind == "2023":
        data = get_config("msclap-2023").to_dict()
        # depths [2, 2]: each stage has a shifted-window block, so attn_mask and gather_* buffers exist.
        data["audio"]["args"].update(embed_dim=8, depths=[2, 2], num_heads=[1, 2], window_size=8, spec_size=256,
                                     mel_bins=64, freq_ratio=4)
        data["audio"]["out_dim"] = 8 * 2 ** (2 - 1)
        data["audio"]["frontend"]["clip_seconds"] = 1.0
        # GPT-2 keeps its 50257-token vocabulary so that the real tokenizer can feed it.
        data["text"]["args"].update(n_layer=1, n_embd=16, n_head=2, n_positions=128)
        data["text"]["out_dim"] = 16
        if not dropout:
            data["audio"]["args"]["drop_path_rate"] = 0.0
    elif kind == "2022":
        data = get_config("msclap-2022").to_dict()
        data["audio"]["args"] = {"out_emb": 32}  # CNN14's convolutions are fixed-size
        data["audio"]["out_dim"] = 32
        data["audio"]["frontend"]["clip_seconds"] = 0.5  # 69 frames: enough for five 2x poolings
        data["text"]["args"].update(vocab_size=1000, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=32, max_position_embeddings=32)
        data["text"]["out_dim"] = 16
    else:
        raise ValueError(kind)
    data["embed_dim"] = 8
    if not dropout:
        data["projection_dropout"] = 0.0
    return parse_config(data, f"tiny msclap-{kind}")


def tiny_model(kind: str, seed: int = 0, **config_options) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(tiny_config(kind, **config_options))


def waveforms(config: ModelConfig, batch: int, seed: int = 0) -> torch.Tensor:
    """(batch, clip samples) float32: a few sines per clip, different per clip, plus a little noise."""
    rng = np.random.default_rng(seed)
    rate = config.audio.frontend.sample_rate
    t = np.arange(config.clip_samples) / rate
    clips = []
    for _ in range(batch):
        freqs = rng.uniform(80.0, 8000.0, size=3)
        amps = rng.uniform(0.05, 0.3, size=3)
        clip = sum(a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f, a in zip(freqs, amps))
        clips.append(clip + 0.01 * rng.standard_normal(t.shape))
    return torch.from_numpy(np.stack(clips).astype(np.float32))


def texts(config: ModelConfig, batch: int, length: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """Hand-made token ids, right-padded: row i has ``length - i`` tokens (at least 2). Id 0 is the pad
    (msclap's GPT-2 pooling counts ids != 0; BERT's [PAD]), so text ids are drawn from 1..vocab-1."""
    generator = torch.Generator().manual_seed(seed)
    vocab = config.text.args["vocab_size"]
    input_ids = torch.randint(1, vocab, (batch, length), generator=generator)
    lengths = torch.clamp(length - torch.arange(batch), min=2)
    attention_mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    tokens = {"input_ids": input_ids, "attention_mask": attention_mask}
    if config.text.arch == "bert":
        tokens["token_type_ids"] = torch.zeros_like(input_ids)
    return tokens


def contrastive_loss(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """CLIP's symmetric loss: cross-entropy over ``logit_scale · a @ t.T`` both ways."""
    a = F.normalize(out["audio_features"], dim=-1)
    t = F.normalize(out["text_features"], dim=-1)
    logits = out["logit_scale"] * a @ t.T
    labels = torch.arange(logits.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def is_derived_buffer(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf in DERIVED_BUFFER_NAMES or leaf.startswith(DERIVED_BUFFER_PREFIXES)


def capture_output_dtype(module: torch.nn.Module, seen: list[torch.dtype]):
    return module.register_forward_hook(lambda _module, _inputs, output: seen.append(output.dtype))


KINDS = ["2023", "2022"]


# ---- 1. forward contract -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_forward_returns_unnormalised_features_and_exponentiated_logit_scale(kind):
    config = tiny_config(kind)
    model = tiny_model(kind).eval()
    audio, tokens = waveforms(config, 2), texts(config, 3)  # audio and text batches need not match
    with torch.no_grad():
        out = model(audio, **tokens)

        assert set(out) == {"audio_features", "text_features", "logit_scale"}
        assert out["audio_features"].shape == (2, config.embed_dim)
        assert out["text_features"].shape == (3, config.embed_dim)
        assert out["logit_scale"].shape == ()
        assert torch.equal(out["logit_scale"], model.logit_scale.exp()[0])
        assert math.isclose(out["logit_scale"].item(), 1 / 0.07, rel_tol=1e-5)  # CLIP's initial temperature

        audio_features = model.encode_audio(audio)
        text_features = model.encode_text(**tokens)
        torch.testing.assert_close(out["audio_features"], audio_features, rtol=0, atol=0)
        torch.testing.assert_close(out["text_features"], text_features, rtol=0, atol=0)
        # un-normalised: the projections end in a LayerNorm, so their norms are far from 1
        assert not torch.allclose(audio_features.norm(dim=-1), torch.ones(2), atol=1e-2)
        assert not torch.allclose(text_features.norm(dim=-1), torch.ones(3), atol=1e-2)

        unit_audio = model.encode_audio(audio, normalize=True)
        unit_text = model.encode_text(**tokens, normalize=True)
    torch.testing.assert_close(unit_audio.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(unit_text.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(unit_audio, F.normalize(audio_features, dim=-1))
    torch.testing.assert_close(unit_text, F.normalize(text_features, dim=-1))


# ---- 2. every parameter is trained -----------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_every_parameter_gets_a_finite_nonzero_gradient_from_the_contrastive_loss(kind):
    config = tiny_config(kind)
    model = tiny_model(kind).train()
    contrastive_loss(model(waveforms(config, 2), **texts(config, 2))).backward()

    missing = [name for name, p in model.named_parameters() if p.grad is None]
    non_finite = [name for name, p in model.named_parameters() if p.grad is not None and not p.grad.isfinite().all()]
    zero = [name for name, p in model.named_parameters() if p.grad is not None and not p.grad.abs().sum() > 0]
    assert not missing, f"parameters with no gradient path: {missing}"
    assert not non_finite, f"non-finite gradients: {non_finite}"
    assert not zero, f"all-zero gradients: {zero}"


@pytest.mark.parametrize("name", list_configs())
def test_builtin_configs_build_no_classifier_head_or_unused_pooler(name):
    model = create_model(name)
    text = get_config(name).text
    unused = HEAD_NAMES - ({"pooler"} if text and text.pooling == "pooler" else set())  # LAION pools with it
    heads = [n for n, _ in model.named_parameters() if unused & set(n.split("."))]
    assert not heads, f"{name}: parameters with no gradient path to the embeddings: {heads[:5]}"


# ---- 3. derived buffers ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_derived_tensors_are_buffers_but_not_in_the_state_dict(kind):
    model = tiny_model(kind)
    buffers = dict(model.named_buffers())
    state = model.state_dict()

    derived = [name for name in buffers if is_derived_buffer(name)]
    expected_leaves = {"mel_basis", "window"}
    if kind == "2023":
        expected_leaves |= {"relative_position_index", "attn_mask", "gather_0"}
    assert expected_leaves <= {name.rsplit(".", 1)[-1] for name in derived}
    assert not [name for name in state if is_derived_buffer(name)]

    # what a checkpoint does carry: the parameters and BatchNorm's running statistics, nothing else
    parameters = {name for name, _ in model.named_parameters()}
    extra = [k for k in state if k not in parameters
             and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert not extra, f"unexpected persistent state: {extra}"


def test_a_checkpoint_without_derived_buffers_loads_strictly_and_reproduces_the_model():
    config = tiny_config("2023")
    model = tiny_model("2023", seed=1).eval()
    fresh = tiny_model("2023", seed=2).eval()
    fresh.load_state_dict(model.state_dict(), strict=True)
    audio, tokens = waveforms(config, 2), texts(config, 2)
    with torch.no_grad():
        expected, actual = model(audio, **tokens), fresh(audio, **tokens)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0)


# ---- 4./5. precision is the caller's ----------------------------------------------------------------
def test_bf16_autocast_keeps_log_mel_float32_and_embeddings_close_to_float32():
    config = tiny_config("2023")
    model = tiny_model("2023").eval()
    audio, tokens = waveforms(config, 3, seed=3), texts(config, 3, seed=3)
    frontend_dtypes: list[torch.dtype] = []
    projection_dtypes: list[torch.dtype] = []
    hooks = [capture_output_dtype(model.audio.frontend, frontend_dtypes),
             capture_output_dtype(model.audio_projection.linear1, projection_dtypes)]
    try:
        with torch.no_grad():
            audio32, text32 = model.encode_audio(audio), model.encode_text(**tokens)
            frontend_dtypes.clear(), projection_dtypes.clear()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                audio16, text16 = model.encode_audio(audio), model.encode_text(**tokens)
    finally:
        for hook in hooks:
            hook.remove()

    assert frontend_dtypes == [torch.float32]        # log-mel in float32 despite autocast
    assert projection_dtypes == [torch.bfloat16]     # ... while the rest follows the caller's autocast
    assert audio16.dtype == text16.dtype == torch.bfloat16
    assert audio16.isfinite().all() and text16.isfinite().all()
    assert F.cosine_similarity(audio16.float(), audio32).min() >= 0.99
    assert F.cosine_similarity(text16.float(), text32).min() >= 0.99
    # The clips' embeddings are close to each other at random init: compare what tells them apart too.
    centred16, centred32 = audio16.float() - audio16.float().mean(0), audio32 - audio32.mean(0)
    assert F.cosine_similarity(centred16, centred32).min() >= 0.95
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # autocast left the module as it was


def test_a_bf16_model_runs_in_bf16_with_a_float32_front_end_and_does_not_cast_itself():
    config = tiny_config("2023")
    reference = tiny_model("2023").eval()
    model = copy.deepcopy(reference).to(torch.bfloat16)
    audio, tokens = waveforms(config, 2, seed=4), texts(config, 2, seed=4)
    dtypes_before = {name: t.dtype for name, t in [*model.named_parameters(), *model.named_buffers()]}
    frontend_dtypes: list[torch.dtype] = []
    hook = capture_output_dtype(model.audio.frontend, frontend_dtypes)
    try:
        with torch.no_grad():
            audio16 = model.encode_audio(audio)                   # float32 waveform into a bf16 model
            audio16_from_bf16 = model.encode_audio(audio.bfloat16())
            text16 = model.encode_text(**tokens)
            audio32, text32 = reference.encode_audio(audio), reference.encode_text(**tokens)
    finally:
        hook.remove()

    assert frontend_dtypes == [torch.float32, torch.float32]
    assert audio16.dtype == audio16_from_bf16.dtype == text16.dtype == torch.bfloat16
    assert audio16.isfinite().all() and audio16_from_bf16.isfinite().all() and text16.isfinite().all()
    assert F.cosine_similarity(audio16.float(), audio32).min() >= 0.99
    assert F.cosine_similarity(text16.float(), text32).min() >= 0.99
    # nothing was cast behind the caller's back, the front end's buffers included
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {name: t.dtype for name, t in [*model.named_parameters(), *model.named_buffers()]} == dtypes_before


# ---- 6. distributed training -----------------------------------------------------------------------
WORLD_SIZE = 2
STEPS = 2
LEARNING_RATE = 0.1


def rank_batch(config: ModelConfig, step: int, rank: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    seed = 1000 + 10 * step + rank
    return waveforms(config, 2, seed=seed), texts(config, 2, seed=seed)


def train_steps(model: torch.nn.Module, forward, config: ModelConfig, rank: int) -> None:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    for step in range(STEPS):
        audio, tokens = rank_batch(config, step, rank)
        contrastive_loss(forward(audio, **tokens)).backward()
        optimizer.step()
        optimizer.zero_grad()


def full_parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter as a plain tensor (FSDP2's DTensors all-gathered: a collective on all ranks)."""
    return {name: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()
            for name, p in model.named_parameters()}


def _distributed_worker(rank: int, port: int, out_dir: str) -> None:
    """One rank: DDP, then FSDP2, each ``STEPS`` steps on this rank's own batches; parameters saved."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        config = tiny_config("2023", dropout=False)

        # DDP: each rank initialises differently; DDP broadcasts rank 0's parameters, then all-reduces
        # the gradients. find_unused_parameters=False: step 2 raises if any parameter got no gradient.
        model = tiny_model("2023", seed=rank, dropout=False).train()
        ddp = DistributedDataParallel(model)
        train_steps(model, ddp, config, rank)
        torch.save(full_parameters(model), Path(out_dir) / f"ddp_{rank}.pt")

        # FSDP2: each tower sharded, then the root (logit_scale, the projections).
        from torch.distributed.fsdp import fully_shard

        model = tiny_model("2023", seed=0, dropout=False).train()
        fully_shard(model.audio)
        fully_shard(model.text)
        fully_shard(model)
        train_steps(model, model, config, rank)
        parameters = full_parameters(model)
        torch.save(parameters, Path(out_dir) / f"fsdp_{rank}.pt")
    finally:
        dist.destroy_process_group()


def reference_training(seed: int) -> dict[str, torch.Tensor]:
    """What data-parallel training must compute: one process, the mean of the ranks' losses per step."""
    config = tiny_config("2023", dropout=False)
    model = tiny_model("2023", seed=seed, dropout=False).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    for step in range(STEPS):
        losses = []
        for rank in range(WORLD_SIZE):  # per-rank forwards: BatchNorm sees each rank's batch alone
            audio, tokens = rank_batch(config, step, rank)
            losses.append(contrastive_loss(model(audio, **tokens)))
        (sum(losses) / WORLD_SIZE).backward()
        optimizer.step()
        optimizer.zero_grad()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_same_parameters(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str,
                           **tolerance) -> None:
    assert actual.keys() == expected.keys(), what
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, msg=lambda m, name=name: f"{what}: {name}: {m}", **tolerance)


def test_ddp_and_fsdp2_train_the_model_as_it_is(tmp_path):
    import torch.multiprocessing as mp

    mp.start_processes(_distributed_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE,
                       start_method="spawn")

    initial = {name: p.detach().clone() for name, p in tiny_model("2023", seed=0, dropout=False).named_parameters()}
    expected = reference_training(seed=0)  # rank 0's initialisation, broadcast by DDP
    changed = [name for name in expected if not torch.equal(expected[name], initial[name])]
    assert len(changed) == len(expected), "the reference steps should move every parameter"

    ddp = [torch.load(tmp_path / f"ddp_{rank}.pt") for rank in range(WORLD_SIZE)]
    assert_same_parameters(ddp[1], ddp[0], "DDP rank 1 vs rank 0", rtol=0, atol=0)
    assert_same_parameters(ddp[0], expected, "DDP vs single-process reference", rtol=1e-4, atol=1e-5)

    fsdp = [torch.load(tmp_path / f"fsdp_{rank}.pt") for rank in range(WORLD_SIZE)]
    assert_same_parameters(fsdp[1], fsdp[0], "FSDP2 rank 1 vs rank 0", rtol=0, atol=0)
    assert_same_parameters(fsdp[0], expected, "FSDP2 vs single-process reference", rtol=1e-4, atol=1e-5)


# ---- 7. the pipeline borrows the model -------------------------------------------------------------
def model_flags(model: torch.nn.Module) -> dict:
    return {"training": {name: module.training for name, module in model.named_modules()},
            "parameters": {name: (p.requires_grad, p.dtype, p.device) for name, p in model.named_parameters()},
            "buffers": {name: (b.dtype, b.device) for name, b in model.named_buffers()}}


def training_model() -> torch.nn.Module:
    """A tiny model as a training loop holds it: train mode, a frozen BatchNorm, some frozen parameters."""
    model = tiny_model("2023").train()
    model.audio.encoder.bn0.eval()
    model.audio.encoder.patch_embed.requires_grad_(False)
    model.text.encoder.wte.weight.requires_grad_(False)
    return model


def assert_untouched(model: torch.nn.Module, flags: dict, state: dict[str, torch.Tensor]) -> None:
    assert model_flags(model) == flags
    after = model.state_dict()
    assert after.keys() == state.keys()
    changed = [k for k in state if not torch.equal(after[k], state[k])]
    assert not changed, f"the pipeline changed {changed}"
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


def test_pipeline_audio_calls_leave_the_training_model_untouched_and_run_in_eval_mode():
    config = tiny_config("2023")
    model = training_model()
    flags, state = model_flags(model), {k: v.clone() for k, v in model.state_dict().items()}
    evaluated = copy.deepcopy(model).eval()
    clip = waveforms(config, 1, seed=5)[0].numpy()  # one clip of exactly the model's length: one window

    embeddings = ClapPipeline(model, config).embed_audio(clip, sample_rate=config.audio.frontend.sample_rate)

    assert_untouched(model, flags, state)
    expected = ClapPipeline(evaluated, config).embed_audio(clip, sample_rate=config.audio.frontend.sample_rate)
    torch.testing.assert_close(embeddings, expected, rtol=0, atol=1e-6)
    with torch.no_grad():
        direct = evaluated.encode_audio(torch.from_numpy(clip)[None], normalize=True)
        dropped = copy.deepcopy(model).encode_audio(torch.from_numpy(clip)[None], normalize=True)
    torch.testing.assert_close(embeddings, direct, rtol=0, atol=1e-5)
    assert not torch.allclose(dropped, direct, atol=1e-3), "train mode should differ (dropout): the check above means something"


def test_pipeline_text_and_classify_leave_the_training_model_untouched():
    if not GPT2_TOKENIZER.is_dir():
        pytest.skip(f"GPT-2 tokenizer files not found at {GPT2_TOKENIZER}")
    config = tiny_config("2023")
    model = training_model()
    flags, state = model_flags(model), {k: v.clone() for k, v in model.state_dict().items()}
    evaluated = copy.deepcopy(model).eval()
    rate = config.audio.frontend.sample_rate
    clips = waveforms(config, 2, seed=6).numpy()
    prompts = ["a dog barks", "rain falls on a tin roof", "!!! wow"]
    labels = ["dog", "rain"]

    pipeline = ClapPipeline(model, config, tokenizer=str(GPT2_TOKENIZER))
    text = pipeline.embed_text(prompts)
    scores = pipeline.classify(clips, labels, sample_rate=rate)

    assert_untouched(model, flags, state)
    reference = ClapPipeline(evaluated, config, tokenizer=str(GPT2_TOKENIZER))
    torch.testing.assert_close(text, reference.embed_text(prompts), rtol=0, atol=1e-6)
    expected = reference.classify(clips, labels, sample_rate=rate)
    assert scores.labels == labels
    torch.testing.assert_close(scores.probs, expected.probs, rtol=0, atol=1e-6)
    torch.testing.assert_close(scores.probs.sum(-1), torch.ones(2))

    tokens = pipeline.tokenizer(prompts)
    with torch.no_grad():
        direct = evaluated.encode_text(**tokens, normalize=True)
        dropped = copy.deepcopy(model).encode_text(**tokens, normalize=True)
    torch.testing.assert_close(text, direct, rtol=0, atol=1e-5)
    assert not torch.allclose(dropped, direct, atol=1e-3), "train mode should differ (dropout)"
