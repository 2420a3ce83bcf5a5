"""One batch's gradient: contrastive (whole or in GradCache chunks), or prompted answers (audio
pretraining, whole or accumulated in chunks)."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from .distributed import no_sync
from .loss import build_loss

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device):
    dtype = AUTOCAST[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


class ContrastiveStep:
    """The gradient of the contrastive loss of one batch, accumulated into the model's parameters.

    ``wrapped`` is what runs the forward pass (the model, or its DDP/FSDP wrapper); ``scaler`` is
    the fp16 gradient scaler (a disabled one otherwise).
    """

    def __init__(self, model: nn.Module, wrapped: nn.Module, loss: str, precision: str, device: torch.device,
                 scaler: torch.amp.GradScaler) -> None:
        self.model, self.wrapped, self.loss_name = model, wrapped, loss
        self.loss_fn = build_loss(loss)
        self.precision, self.device, self.scaler = precision, device, scaler

    def backward(self, audio: torch.Tensor, tokens: dict, ids: torch.Tensor, micro: int | None) -> torch.Tensor:
        """Back-propagate the batch's loss (GradCache when ``micro`` is below the batch); returns the loss."""
        if micro is not None and micro < len(audio):
            return self.gradcache_backward(audio, tokens, ids, micro)
        return self.full_batch_backward(audio, tokens, ids)

    def loss(self, out: dict, ids: torch.Tensor) -> torch.Tensor:
        extra = (out["logit_bias"].float(),) if self.loss_name == "sigmoid" else ()
        scales = {}
        if "logit_scale_text" in out and self.loss_name == "clip":
            scales["logit_scale_text"] = out["logit_scale_text"].float()
        return self.loss_fn(out["audio_features"].float(), out["text_features"].float(), out["logit_scale"].float(),
                            *extra, caption_ids=ids, **scales)

    def forward(self, audio: torch.Tensor, tokens: dict) -> dict:
        with autocast(self.precision, self.device):
            return self.wrapped(audio, **tokens)

    def full_batch_backward(self, audio: torch.Tensor, tokens: dict, ids: torch.Tensor) -> torch.Tensor:
        loss = self.loss(self.forward(audio, tokens), ids)
        self.scaler.scale(loss).backward()
        return loss.detach()

    def gradcache_backward(self, audio: torch.Tensor, tokens: dict, ids: torch.Tensor, micro: int) -> torch.Tensor:
        """GradCache: embed the batch in chunks without a graph, take the loss over the whole batch,
        then re-run each chunk with a graph and back-propagate the cached embedding gradients. The
        RNG state is replayed per chunk (same dropout); BatchNorm statistics are updated once."""
        chunks = [slice(i, i + micro) for i in range(0, len(audio), micro)]
        rng_states, outputs = [], []
        running_stats = _batchnorm_stats(self.model)
        with torch.no_grad():
            for chunk in chunks:
                rng_states.append(_rng_state(self.device))
                outputs.append(self.forward(audio[chunk], {k: v[chunk] for k, v in tokens.items()}))
        _restore_batchnorm_stats(running_stats)
        cached = {key: (torch.cat([o[key] for o in outputs]) if outputs[0][key].ndim else outputs[0][key])
                  .detach().float().requires_grad_() for key in outputs[0]}
        loss = self.loss(cached, ids)
        self.scaler.scale(loss).backward()
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            _set_rng_state(rng_states[i], self.device)
            with contextlib.nullcontext() if last else no_sync(self.wrapped):
                out = self.forward(audio[chunk], {k: v[chunk] for k, v in tokens.items()})
                grads = [_chunk_grad(cached[key], chunk, last) for key in out]
                torch.autograd.backward(list(out.values()), [g.to(o.dtype) for g, o in zip(grads, out.values())])
        return loss.detach()


class AnswerStep:
    """The gradient of the next-token cross-entropy of prompted answers (teacher forcing; the
    prompt's tokens are not scored), averaged over the answer tokens of the global batch. A
    ``micro`` batch below the rank's accumulates chunk gradients: the loss is a sum over tokens, so
    this equals the whole batch (BatchNorm aside, as for GradCache: ``--batchnorm frozen``)."""

    def __init__(self, wrapped: nn.Module, precision: str, device: torch.device, scaler: torch.amp.GradScaler,
                 world) -> None:
        self.wrapped, self.precision, self.device, self.scaler, self.world = wrapped, precision, device, scaler, world

    def backward(self, audio: torch.Tensor, input_ids: torch.Tensor, targets: torch.Tensor,
                 micro: int | None) -> torch.Tensor:
        """Back-propagate the batch's mean token loss; returns it (the global mean under DDP)."""
        # DDP averages gradients over ranks; scaling by ranks / global tokens makes that the global token mean.
        tokens = self.world.sum(float((targets != -100).sum()))
        scale = self.world.world_size / max(tokens, 1.0)
        micro = micro or len(audio)
        chunks = [slice(i, i + micro) for i in range(0, len(audio), micro)]
        total = torch.zeros((), device=self.device)
        for i, chunk in enumerate(chunks):
            with contextlib.nullcontext() if i == len(chunks) - 1 else no_sync(self.wrapped):
                positions = targets[chunk] != -100
                with autocast(self.precision, self.device):
                    logits = self.wrapped(audio[chunk], input_ids[chunk], positions)
                loss_sum = nn.functional.cross_entropy(logits.float(), targets[chunk][positions], reduction="sum")
                self.scaler.scale(loss_sum * scale).backward()
                total += loss_sum.detach()
        return torch.tensor(self.world.sum(float(total)) / max(tokens, 1.0))


def _chunk_grad(cached: torch.Tensor, chunk: slice, last: bool) -> torch.Tensor:
    """The loss's gradient for one chunk's output: its rows of a batch output; a shared scalar's
    (logit scale, bias) whole gradient on the last chunk and zero before (it is counted once)."""
    grad = cached.grad if cached.grad is not None else torch.zeros_like(cached)
    if cached.ndim:
        return grad[chunk]
    return grad if last else torch.zeros_like(grad)


def _batchnorm_stats(model: nn.Module) -> list[tuple[nn.Module, list[torch.Tensor]]]:
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    return [(m, [m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()]) for m in norms]


def _restore_batchnorm_stats(saved) -> None:
    for module, (mean, var, count) in saved:
        module.running_mean.copy_(mean)
        module.running_var.copy_(var)
        module.num_batches_tracked.copy_(count)


def _rng_state(device: torch.device):
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(state, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)
