"""The user-facing API: ``clapkit.load(...)`` returns a :class:`ClapModel` that embeds audio and
text, scores them against each other, classifies and captions."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .audio import AudioError, describe, iter_windows
from .text.tokenizer import load_tokenizer
from .weights.loading import load_checkpoint, load_pretrained
from .weights.registry import PRETRAINED


@dataclass
class Classification:
    """Zero-shot scores: ``probs[i, j]`` is the probability (softmax, or sigmoid when multi-label)
    that audio ``i`` is ``labels[j]``."""

    labels: list[str]
    probs: torch.Tensor

    def top(self, k: int = 1) -> list[list[tuple[str, float]]]:
        """The ``k`` best ``(label, probability)`` pairs for each audio input."""
        values, indices = self.probs.topk(min(k, len(self.labels)), dim=-1)
        return [[(self.labels[j], float(v)) for v, j in zip(vs, js)] for vs, js in zip(values.tolist(), indices.tolist())]


def _tokenizer_style(text_config: dict) -> str:
    if text_config["arch"] == "bert":
        return "bert"
    return "msclap-gpt2" if text_config["pooling"] == "msclap" else "gpt2"


class ClapModel:
    """A loaded CLAP model with its tokenizer and audio settings. Build it with :func:`load`.

    Audio of any length, rate and channel count is accepted: it is mixed to mono (or concatenated
    like msclap with ``msclap_compat=True``), resampled to the model's rate, tiled when shorter than
    the model's clip and cut into sliding windows (hop ``hop_seconds``) when longer; window
    embeddings are averaged. Everything is deterministic and independent of batch composition.
    """

    def __init__(self, model: torch.nn.Module, config: dict, tokenizer: str | None = None, *,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 msclap_compat: bool = False, hop_seconds: float | None = None, policy: str = "sliding") -> None:
        self.config = config
        self.name = config.get("name", "clap")
        self.device = torch.device(device)
        self.dtype = dtype
        self.model = model.to(self.device, dtype).eval()
        self._audio_model.audio.frontend.float()  # see AudioTower.forward
        frontend = config["audio"]["frontend"]
        self.sample_rate: int = frontend["sample_rate"]
        self.clip_samples = int(round(frontend["clip_seconds"] * self.sample_rate))
        self.hop_samples = int(round(hop_seconds * self.sample_rate)) if hop_seconds else None
        self.policy = policy
        self.msclap_compat = msclap_compat
        text_config = config.get("text") or (config.get("caption") or {}).get("decoder")
        self._tokenizer_name = tokenizer or (text_config or {}).get("tokenizer")
        self._tokenizer_style = _tokenizer_style(text_config) if config.get("text") else "gpt2"
        self._tokenizer = None

    @property
    def _audio_model(self):
        return self.model.clap if hasattr(self.model, "clap") else self.model

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self._tokenizer_name, self._tokenizer_style)
        return self._tokenizer

    # ---- audio -------------------------------------------------------------------------------
    def _windows(self, items: Sequence, sample_rate: int | None) -> Iterator[tuple[int, np.ndarray | AudioError]]:
        for index, item in enumerate(items):
            for window in self._item_windows(index, item, sample_rate):
                yield index, window

    def _item_windows(self, index: int, item, sample_rate: int | None) -> Iterator[np.ndarray | AudioError]:
        """The windows of one input, or a single AudioError where it cannot be read (mid-stream too)."""
        is_array = isinstance(item, (np.ndarray, torch.Tensor))
        # ``sample_rate`` describes the arrays of a mixed list; files carry their own rate.
        source_rate, name = (sample_rate, f"{describe(item)} #{index}") if is_array else (None, None)
        try:
            yield from iter_windows(item, self.sample_rate, self.clip_samples, policy=self.policy,
                                    hop_samples=self.hop_samples, source_rate=source_rate,
                                    msclap_compat=self.msclap_compat, name=name)
        except AudioError as e:
            yield e

    @torch.inference_mode()
    def _encode_windows(self, windows: list[np.ndarray]) -> torch.Tensor:
        batch = torch.from_numpy(np.stack(windows)).to(self.device)
        return self._audio_model.encode_audio(batch).float().cpu()

    def iter_audio_embeddings(self, audio: Iterable, *, sample_rate: int | None = None, batch_size: int = 32,
                              normalize: bool = True, windows: str = "mean") -> Iterator[tuple[int, torch.Tensor | AudioError]]:
        """Yield ``(index, embedding)`` for each input in order, or ``(index, AudioError)`` for one
        that cannot be read — the rest go on. ``windows="all"`` yields ``(n_windows, D)`` per input."""
        if windows not in ("mean", "all"):
            raise ValueError(f"windows must be 'mean' or 'all', not {windows!r}")
        items = list(audio)
        pending: list[tuple[int, np.ndarray]] = []
        per_item: dict[int, list[torch.Tensor]] = {}
        failed: dict[int, AudioError] = {}
        next_out = 0

        def flush() -> None:
            if pending:
                out = self._encode_windows([w for _, w in pending])
                for (index, _), row in zip(pending, out):
                    if index not in failed:
                        per_item.setdefault(index, []).append(row)
                pending.clear()

        def finished(upto: int) -> Iterator[tuple[int, torch.Tensor | AudioError]]:
            nonlocal next_out
            while next_out < upto:
                if next_out in failed:
                    yield next_out, failed.pop(next_out)
                else:
                    yield next_out, self._reduce(per_item.pop(next_out), normalize, windows)
                next_out += 1

        for index, window in self._windows(items, sample_rate):
            if isinstance(window, AudioError):
                failed[index] = window
                per_item.pop(index, None)
                continue
            pending.append((index, window))
            if len(pending) == batch_size:
                flush()
                yield from finished(index)  # every earlier input is complete
        flush()
        yield from finished(len(items))

    @staticmethod
    def _reduce(rows: list[torch.Tensor], normalize: bool, windows: str) -> torch.Tensor:
        stacked = torch.stack(rows)
        if windows == "mean":
            stacked = stacked.mean(0)
        return F.normalize(stacked, dim=-1) if normalize else stacked

    def embed_audio(self, audio, *, sample_rate: int | None = None, batch_size: int = 32, normalize: bool = True,
                    windows: str = "mean") -> torch.Tensor | list[torch.Tensor]:
        """Embed audio inputs (paths, file objects, arrays or tensors; arrays need ``sample_rate``).

        Returns an ``(N, D)`` tensor (``windows="mean"``) or a list of ``(n_windows, D)`` tensors
        (``windows="all"``). ``normalize=False`` gives msclap's un-normalised projections.
        Raises :class:`AudioError` naming the first input that cannot be read.
        """
        items = audio if isinstance(audio, (list, tuple)) else [audio]
        results = []
        for _, result in self.iter_audio_embeddings(items, sample_rate=sample_rate, batch_size=batch_size,
                                                    normalize=normalize, windows=windows):
            if isinstance(result, AudioError):
                raise result
            results.append(result)
        return torch.stack(results) if windows == "mean" else results

    # ---- text --------------------------------------------------------------------------------
    @torch.inference_mode()
    def embed_text(self, texts: str | Sequence[str], *, batch_size: int = 256, normalize: bool = True) -> torch.Tensor:
        """Embed texts: ``(N, D)``; ``normalize=False`` gives msclap's un-normalised projections."""
        if getattr(self._audio_model, "text", None) is None:
            raise ValueError(f"{self.name} has no text encoder")
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = {k: v.to(self.device) for k, v in self.tokenizer(texts[start:start + batch_size]).items()}
            out.append(self._audio_model.encode_text(**tokens).float().cpu())
        embeddings = torch.cat(out) if out else torch.empty(0, self.config["embed_dim"])
        return F.normalize(embeddings, dim=-1) if normalize else embeddings

    # ---- tasks -------------------------------------------------------------------------------
    @torch.inference_mode()
    def similarity(self, audio_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Logit-scaled cosine similarity, ``(N_audio, N_text)``."""
        return self._audio_model.similarity(audio_embeddings.float(), text_embeddings.float()).float().cpu()

    def classify(self, audio, labels: Sequence[str], *, template: str = "this is the sound of {}",
                 multilabel: bool = False, sample_rate: int | None = None, batch_size: int = 32) -> Classification:
        """Zero-shot classification: softmax over the label prompts (sigmoid when ``multilabel``)."""
        if not labels:
            raise ValueError("classify needs at least one label")
        text = self.embed_text([template.format(label) for label in labels])
        scores = self.similarity(self.embed_audio(audio, sample_rate=sample_rate, batch_size=batch_size), text)
        return Classification(list(labels), scores.sigmoid() if multilabel else scores.softmax(dim=-1))

    @torch.inference_mode()
    def caption(self, audio, *, sample_rate: int | None = None, beam_size: int = 5, max_length: int = 67,
                stop: str | None = None, batch_size: int = 8) -> list[str]:
        """Captions from a clapcap model, ``batch_size`` clips searched together.
        ``stop``: "msclap" (token 220, like msclap) or "eos"."""
        if not hasattr(self.model, "generate"):
            raise ValueError(f"{self.name} is not a captioning model (use msclap-clapcap)")
        stop = stop or self.config["caption"].get("stop", "eos")
        items = audio if isinstance(audio, (list, tuple)) else [audio]
        first_windows = []
        for index, item in enumerate(items):
            # A caption describes one window: the first (the whole clip for clips up to clip length).
            window = next(self._item_windows(index, item, sample_rate))
            if isinstance(window, AudioError):
                raise window
            first_windows.append(window)
        captions = []
        for start in range(0, len(first_windows), batch_size):
            waveforms = torch.from_numpy(np.stack(first_windows[start:start + batch_size])).to(self.device)
            captions += self.model.generate(waveforms, self.tokenizer, beam_size=beam_size, max_length=max_length, stop=stop)
        return captions


def load(name_or_path: str | Path, *, variant: str | None = None, tokenizer: str | None = None,
         device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, **options) -> ClapModel:
    """Load a CLAP model by registry name (``clapkit.PRETRAINED``) or from a checkpoint path.

    ``variant`` names the architecture of a path whose keys do not say it; ``tokenizer`` is a hub
    name or a local folder (default: the model's own). Other options go to :class:`ClapModel`.
    """
    if str(name_or_path) in PRETRAINED or not Path(name_or_path).exists():
        model, config, _ = load_pretrained(str(name_or_path))  # names the known models if unknown
    else:
        model, config = load_checkpoint(name_or_path, variant)
    return ClapModel(model, config, tokenizer, device=device, dtype=dtype, **options)
