"""The user-facing API: ``clapkit.load(...)`` returns a :class:`ClapPipeline` that embeds audio and
text, scores them against each other, classifies and captions.

Audio inputs, one rule for numpy and torch alike:

- a path, file object or encoded ``bytes``: one clip (the file's own rate and channels);
- a 1-D array/tensor: one mono clip; a 2-D one at the top level: a batch of mono clips ``(B, T)``;
  a 3-D one: a batch of multi-channel clips ``(B, C, T)``;
- a list or tuple: one clip per item, each a path, file object, bytes, a 1-D mono array or a 2-D
  ``(C, T)`` array. Arrays need ``sample_rate``.

The pipeline never changes the module it is given: device, dtype, train/eval mode and
``requires_grad`` are the same after any call (it switches to eval mode for the call and back), so
training can wrap its live model for zero-shot validation.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import options
from .audio import AudioError, describe, iter_windows
from .errors import UsageError
from .models.config import ModelConfig, TextInit, list_configs
from .models.htsat import rows_per_pass
from .text.tokenizer import TextTokenizer, load_tokenizer
from .weights.loading import load_checkpoint, load_pretrained
from .weights.onnx import is_onnx_folder, load_onnx
from .weights.registry import DEFAULT_MODEL, PRETRAINED

# Windows per model call on a CPU, whatever the batch size. Measured with msclap-2023 on 2 cores
# (7 s clips, batch 16): calls of 4 windows instead of 16 are as fast in fp32 and ~20 % faster in
# bf16 and int8 (intermediates stay in cache), and the job's peak memory falls by ~200 MB.
CPU_WINDOWS_PER_CALL = 4

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


@dataclass
class Classification:
    """Zero-shot scores: ``probs[i, j]`` is the probability (softmax, or sigmoid when multi-label)
    that audio ``i`` is ``labels[j]``."""

    labels: list[str]
    probs: torch.Tensor

    def top(self, k: int = 1) -> list[list[tuple[str, float]]]:
        """The ``k`` best ``(label, probability)`` pairs for each audio input."""
        k = options.positive_int("k", k)
        values, indices = self.probs.topk(min(k, len(self.labels)), dim=-1)
        return [[(self.labels[j], float(v)) for v, j in zip(vs, js)] for vs, js in zip(values.tolist(), indices.tolist())]


def tokenizer_style(config: ModelConfig) -> str:
    """The tokenizer rule the model's text tower (else its caption decoder) was trained with."""
    text = config.text
    if text is None:
        return config.caption.decoder.tokenizer_style if config.caption else "gpt2"
    if text.arch in ("bert", "roberta"):
        return text.arch
    return "msclap-gpt2" if text.pooling == "msclap" else "gpt2"


def default_tokenizer(config: ModelConfig) -> str | None:
    """The config's tokenizer; one that an installed package holds (clapkit-small's
    all-MiniLM-L6-v2) is read from that package's folder, so that it works offline."""
    if config.text is None:
        decoder = config.caption.decoder if config.caption else None
        return None if decoder is None else _package_folder(decoder.tokenizer_init) or decoder.tokenizer
    return _package_folder(config.text.init) or config.text.tokenizer


def _package_folder(init: TextInit | None) -> str | None:
    if init is None or init.package is None:
        return None
    import importlib.util

    spec = importlib.util.find_spec(init.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))) / init.folder)


def audio_items(audio) -> list:
    """The clips of an ``audio`` argument, by the module's rule (a batch array becomes its rows)."""
    if isinstance(audio, (np.ndarray, torch.Tensor)):
        if audio.ndim == 1:
            return [audio]
        if audio.ndim in (2, 3):
            return list(audio)
        raise UsageError(f"audio: a {type(audio).__name__} of shape {tuple(audio.shape)}; expected (T,) for one "
                         "clip, (B, T) for a batch of mono clips or (B, C, T) for multi-channel clips")
    if isinstance(audio, (list, tuple)):
        return list(audio)
    if isinstance(audio, (str, os.PathLike, bytes, bytearray)) or hasattr(audio, "read"):
        return [audio]
    raise UsageError(f"audio: unsupported input type {type(audio).__name__} (need a path, file object, bytes, "
                     "numpy array, torch tensor, or a list of them)")


class ClapPipeline:
    """A CLAP model with its tokenizer and audio settings. Build it with :func:`load`.

    Audio of any length, rate and channel count is accepted: it is mixed to mono (or concatenated
    like msclap with ``msclap_compat=True``), resampled to the model's rate, filled as the model was
    trained (tiled for msclap, tiled and padded for LAION) when shorter than the model's clip and,
    when longer, cut by ``policy``: ``"sliding"`` windows (hop ``hop_seconds``) whose embeddings are
    averaged, the ``"start"`` or ``"center"`` window, or, for LAION's fusion models (their default),
    ``"fusion"``: the whole clip and three crops at its start, middle and end, fused by the model.
    Deterministic and independent of batch composition.
    ``rows_per_pass`` is a CPU speed knob for HTSAT (tokens per pass through a Swin block).
    ``autocast`` (bf16 or fp16) runs every call under ``torch.autocast``: matrix products in that
    dtype, while the weights, LayerNorm, softmax and the residual stream stay float32.
    """

    def __init__(self, model: torch.nn.Module, config: ModelConfig, tokenizer: str | None = None, *,
                 msclap_compat: bool = False, hop_seconds: float | None = None, policy: str | None = None,
                 rows_per_pass: int | None = 4096, autocast: torch.dtype | None = None) -> None:
        self.model = model
        self.autocast = autocast
        self.config = config
        self.name = config.name
        self.sample_rate: int = config.audio.frontend.sample_rate
        self.clip_samples = config.clip_samples
        clip_seconds = config.audio.frontend.clip_seconds
        if hop_seconds is not None:
            hop_seconds = options.hop_seconds("hop_seconds", hop_seconds, clip_seconds)
        self.hop_samples = max(1, round(hop_seconds * self.sample_rate)) if hop_seconds else None
        self.policy = self._check_policy(policy, config)
        self.fill = config.audio.frontend.short_clip
        self.msclap_compat = bool(msclap_compat)
        self.rows_per_pass = None if rows_per_pass is None else options.positive_int("rows_per_pass", rows_per_pass)
        self._tokenizer_name = tokenizer or default_tokenizer(config)
        self._tokenizer_max_length = config.text.max_length if config.text else None
        self._tokenizer: TextTokenizer | None = None

    @staticmethod
    def _check_policy(policy: str | None, config: ModelConfig) -> str:
        fusion = config.audio.fusion
        if policy is None:
            return "fusion" if fusion else "sliding"
        known = ("sliding", "start", "center", "fusion") if fusion else ("sliding", "start", "center")
        if policy not in known:
            note = "" if policy != "fusion" else f" ({config.name} has no feature fusion)"
            raise UsageError(f"policy: {policy!r} is not an inference policy for this model{note}; choose {', '.join(known)}")
        return policy

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype of the matrix products: the autocast dtype, else the weights'."""
        return self.autocast or next(self.model.parameters()).dtype

    @property
    def tokenizer(self) -> TextTokenizer:
        """Texts -> dict of ``input_ids``, ``attention_mask`` (...) tensors, ready for ``model(**)``."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self._tokenizer_name, tokenizer_style(self.config),
                                             self._tokenizer_max_length)
        return self._tokenizer

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        """Eval mode and no autograd for the call; every module's own train/eval flag restored after."""
        modes = [(module, module.training) for module in self.model.modules()]
        self.model.eval()
        try:
            with (torch.inference_mode(), rows_per_pass(self.rows_per_pass),
                  torch.autocast(self.device.type, dtype=self.autocast or torch.bfloat16, enabled=self.autocast is not None)):
                yield
        finally:
            for module, training in modes:
                module.training = training

    # ---- audio -------------------------------------------------------------------------------
    def _item_windows(self, index: int, item, sample_rate: int | None) -> Iterator[np.ndarray | AudioError]:
        """The windows of one input, or a single AudioError where it cannot be read (mid-stream too)."""
        is_array = isinstance(item, (np.ndarray, torch.Tensor))
        # ``sample_rate`` describes the arrays of a mixed list; files carry their own rate.
        source_rate, name = (sample_rate, f"{describe(item)} #{index}") if is_array else (None, None)
        try:
            yield from iter_windows(item, self.sample_rate, self.clip_samples,
                                    policy="whole" if self.policy == "fusion" else self.policy,
                                    hop_samples=self.hop_samples, fill=self.fill, source_rate=source_rate,
                                    msclap_compat=self.msclap_compat, name=name)
        except AudioError as e:
            yield e

    def _encode_windows(self, windows: list[np.ndarray]) -> torch.Tensor:
        """Embeddings of windows, in order; windows of one length share a forward pass (they differ
        only under the fusion policy, where a longer clip comes whole)."""
        out: list[torch.Tensor | None] = [None] * len(windows)
        by_length: dict[int, list[int]] = {}
        for i, window in enumerate(windows):
            by_length.setdefault(len(window), []).append(i)
        per_call = CPU_WINDOWS_PER_CALL if self.device.type == "cpu" else len(windows)
        calls = [same_length[start:start + per_call]
                 for same_length in by_length.values() for start in range(0, len(same_length), per_call)]
        with self._inference():  # once: autocast's weight casts then serve every call
            for indices in calls:
                batch = torch.from_numpy(np.stack([windows[i] for i in indices])).to(self.device)
                for i, row in zip(indices, self.model.encode_audio(batch).float().cpu()):
                    out[i] = row
        return torch.stack(out)

    def iter_audio_embeddings(self, audio: Iterable, *, sample_rate: int | None = None, batch_size: int = 32,
                              normalize: bool = True, windows: str = "mean") -> Iterator[tuple[int, torch.Tensor | AudioError]]:
        """Yield ``(index, embedding)`` for each input in order, or ``(index, AudioError)`` for one
        that cannot be read — the rest go on. ``windows="all"`` yields ``(n_windows, D)`` per input.

        Windows of consecutive inputs share batches of ``batch_size``; after each batch every input
        it completed is yielded, so results stream while later inputs are still being decoded.
        """
        if windows not in ("mean", "all"):
            raise UsageError(f"windows: must be 'mean' or 'all', not {windows!r}")
        batch_size = options.positive_int("batch_size", batch_size)
        items = audio_items(audio) if isinstance(audio, (np.ndarray, torch.Tensor)) else audio
        pending: list[tuple[int, np.ndarray]] = []  # windows waiting for a batch
        rows: dict[int, list[torch.Tensor]] = {}     # encoded windows per input
        decoded: dict[int, str] = {}                 # inputs fully read (their names), windows maybe pending
        results: dict[int, torch.Tensor | AudioError] = {}
        next_out = count = 0

        def collect() -> None:
            waiting = {i for i, _ in pending}
            for index in [i for i in decoded if i not in waiting]:
                results[index] = self._reduce(rows.pop(index), normalize, windows, decoded.pop(index), index)

        for index, item in enumerate(items):  # consumed lazily: a generator of inputs streams
            count += 1
            for window in self._item_windows(index, item, sample_rate):
                if isinstance(window, AudioError):
                    results[index] = window
                    pending[:] = [(i, w) for i, w in pending if i != index]
                    rows.pop(index, None)
                    break
                pending.append((index, window))
                if len(pending) == batch_size:
                    self._flush(pending, rows)
                    collect()
            if index not in results:
                decoded[index] = describe(item)
                collect()
            while next_out in results:  # every earlier input is complete
                yield next_out, results.pop(next_out)
                next_out += 1
        self._flush(pending, rows)
        collect()
        for index in range(next_out, count):
            yield index, results.pop(index)

    def _flush(self, pending: list[tuple[int, np.ndarray]], rows: dict[int, list[torch.Tensor]]) -> None:
        if not pending:
            return
        out = self._encode_windows([w for _, w in pending])
        for (index, _), row in zip(pending, out):
            rows.setdefault(index, []).append(row)
        pending.clear()

    @staticmethod
    def _reduce(rows: list[torch.Tensor], normalize: bool, windows: str, name: str, index: int) -> torch.Tensor | AudioError:
        stacked = torch.stack(rows)
        if windows == "mean":
            stacked = stacked.mean(0)
        if not torch.isfinite(stacked).all():
            return AudioError(f"{name} #{index}: the model produced a non-finite embedding")
        return F.normalize(stacked, dim=-1) if normalize else stacked

    def embed_audio(self, audio, *, sample_rate: int | None = None, batch_size: int = 32, normalize: bool = True,
                    windows: str = "mean") -> torch.Tensor | list[torch.Tensor]:
        """Embed audio inputs (see the module docstring for what counts as one clip).

        Returns an ``(N, D)`` tensor (``windows="mean"``; ``(0, D)`` for no input) or a list of
        ``(n_windows, D)`` tensors (``windows="all"``). ``normalize=False`` gives the un-normalised
        projections. Raises :class:`AudioError` naming the first input that cannot be read.
        """
        results = []
        for _, result in self.iter_audio_embeddings(audio_items(audio), sample_rate=sample_rate,
                                                    batch_size=batch_size, normalize=normalize, windows=windows):
            if isinstance(result, AudioError):
                raise result
            results.append(result)
        if windows == "all":
            return results
        return torch.stack(results) if results else torch.empty(0, self.config.embed_dim)

    def embed_frames(self, audio, *, sample_rate: int | None = None, hop_seconds: float = 0.5,
                     frame_seconds: float = 1.0, batch_size: int = 32,
                     normalize: bool = True) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Frame-level embeddings: one per ``hop_seconds``, of the ``frame_seconds`` of audio centred
        there (zeros beyond the ends; the frame then filled to the model's window as a short clip
        is). Returns, per input, ``(frames, D)`` embeddings and the frames' centres in seconds
        (0, hop, 2·hop, … up to the clip's length). The one implementation behind HEAR timestamp
        embeddings and the X-ARES encoder; cost: one model window per frame."""
        from .audio import fill, load_audio

        hop = options.positive_seconds("hop_seconds", hop_seconds)
        frame = min(options.positive_seconds("frame_seconds", frame_seconds), self.clip_samples / self.sample_rate)
        batch_size = options.positive_int("batch_size", batch_size)
        frame_samples, hop_samples = max(1, round(frame * self.sample_rate)), max(1, round(hop * self.sample_rate))
        embeddings, centres = [], []
        for index, item in enumerate(audio_items(audio)):
            is_array = isinstance(item, (np.ndarray, torch.Tensor))
            wave = load_audio(item, self.sample_rate, source_rate=sample_rate if is_array else None,
                              msclap_compat=self.msclap_compat, name=f"{describe(item)} #{index}" if is_array else None)
            padded = np.pad(wave, (frame_samples // 2, frame_samples - frame_samples // 2))
            starts = range(0, max(len(wave), 1), hop_samples)
            windows = [fill(padded[s:s + frame_samples], self.clip_samples, self.fill) for s in starts]
            rows = torch.cat([self._encode_windows(windows[i:i + batch_size]) for i in range(0, len(windows), batch_size)])
            embeddings.append(F.normalize(rows, dim=-1) if normalize else rows)
            centres.append(torch.arange(len(windows), dtype=torch.float64) * hop_samples / self.sample_rate)
        return embeddings, centres

    # ---- text --------------------------------------------------------------------------------
    def embed_text(self, texts: str | Sequence[str], *, batch_size: int = 256, normalize: bool = True) -> torch.Tensor:
        """Embed a text or a list of texts: ``(N, D)``; ``normalize=False`` gives the un-normalised projections."""
        if self.config.text is None:
            raise UsageError(f"{self.name} has no text encoder")
        texts = [texts] if isinstance(texts, str) else options.string_list("texts", texts, allow_empty=True)
        batch_size = options.positive_int("batch_size", batch_size)
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = {k: v.to(self.device) for k, v in self.tokenizer(texts[start:start + batch_size]).items()}
            with self._inference():
                out.append(self.model.encode_text(**tokens).float().cpu())
        embeddings = torch.cat(out) if out else torch.empty(0, self.config.embed_dim)
        return F.normalize(embeddings, dim=-1) if normalize else embeddings

    # ---- tasks -------------------------------------------------------------------------------
    def similarity(self, audio_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Logit-scaled cosine similarity, ``(N_audio, N_text)``."""
        if self.config.text is None:
            raise UsageError(f"{self.name} has no text encoder")
        with self._inference():
            scale = self.model.logit_scale.exp().float().cpu().squeeze()
        a = F.normalize(audio_embeddings.float(), dim=-1)
        t = F.normalize(text_embeddings.float(), dim=-1)
        return scale * a @ t.T

    def classify(self, audio, labels: Sequence[str], *, template: str = "this is the sound of {}",
                 multilabel: bool = False, sample_rate: int | None = None, batch_size: int = 32) -> Classification:
        """Zero-shot classification: softmax over the label prompts (sigmoid when ``multilabel``)."""
        labels = options.string_list("labels", labels)
        template = options.template(template)
        text = self.embed_text([template.format(label) for label in labels])
        scores = self.similarity(self.embed_audio(audio, sample_rate=sample_rate, batch_size=batch_size), text)
        return Classification(labels, scores.sigmoid() if multilabel else scores.softmax(dim=-1))

    def caption(self, audio, *, sample_rate: int | None = None, beam_size: int | None = None,
                max_length: int | None = None, stop: str | None = None, batch_size: int = 8,
                prompt: str | None = None) -> list[str]:
        """Captions from a captioning model, ``batch_size`` clips searched together; with ``prompt``,
        each clip's answer to that question (a model trained with ``--stage audio-pretrain``).
        ``stop``: "msclap" (token 220, like msclap) or "eos"; defaults from the model's config."""
        cap = self.config.caption
        if cap is None:
            raise UsageError(f"{self.name} cannot caption: it has no caption decoder (use msclap-clapcap)")
        beam_size = options.positive_int("beam_size", beam_size or cap.beam_size)
        max_length = options.positive_int("max_length", max_length or cap.max_length)
        batch_size = options.positive_int("batch_size", batch_size)
        stop = stop or cap.stop
        if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
            raise UsageError(f"prompt: a question as non-empty text, got {prompt!r}")
        if stop not in ("msclap", "eos"):
            raise UsageError(f"stop: must be 'msclap' or 'eos', not {stop!r}")
        first_windows = []
        for index, item in enumerate(audio_items(audio)):
            # A caption describes one window: the first (the whole clip for clips up to clip length).
            window = next(self._item_windows(index, item, sample_rate))
            if isinstance(window, AudioError):
                raise window
            first_windows.append(window)
        captions = []
        for start in range(0, len(first_windows), batch_size):
            waveforms = torch.from_numpy(np.stack(first_windows[start:start + batch_size])).to(self.device)
            with self._inference():
                captions += self.model.generate(waveforms, self.tokenizer, beam_size=beam_size,
                                                max_length=max_length, stop=stop, prompt=prompt)
        return captions


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` checked to exist on this machine, with a one-line error otherwise."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"device: unknown device {str(device)!r} (e.g. cpu, cuda, cuda:1, mps)") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device: {resolved} requested, but this torch build has no CUDA or sees no GPU")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise UsageError(f"device: {resolved} requested, but only {torch.cuda.device_count()} GPU(s) are visible")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError("device: mps requested, but this machine has no Apple GPU")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"device: {resolved.type} is not supported (use cpu, cuda or mps)")
    return resolved


INT8 = ("int8", "qint8")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); without it, PyTorch emulates
    bf16 matrix products and they run several times slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _quantized(model: torch.nn.Module) -> torch.nn.Module:
    """int8 dynamic quantisation of the audio side's Linear layers (weights int8, activations
    quantised per batch); convolutions, norms and the log-mel front end stay float32. The text side
    is left in float32: it runs once per label set, and int8 moves small text towers too far
    (all-MiniLM-L6-v2: cosine 0.90 to float32)."""
    import warnings

    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:
        raise UsageError("dtype: int8 needs torch.ao.quantization, which this torch build no longer has") from None
    with warnings.catch_warnings():  # torch's notices about its quantisation API, not about this model
        warnings.simplefilter("ignore")
        clap = getattr(model, "clap", model)  # a captioner's audio side is its CLAP's
        for name in ("audio", "audio_projection"):
            quantize_dynamic(getattr(clap, name), {torch.nn.Linear}, dtype=torch.qint8, inplace=True)  # no copy
        return model


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise UsageError(f"dtype: unknown {dtype!r}; choose float32, bfloat16, float16 or int8")
        return DTYPES[dtype]
    if dtype not in DTYPES.values():
        raise UsageError(f"dtype: {dtype} is not supported; choose torch.float32, torch.bfloat16 or torch.float16")
    return dtype


def load(name_or_path: str | Path = DEFAULT_MODEL, *, variant: str | None = None, tokenizer: str | None = None,
         device: str | torch.device = "cpu", dtype: str | torch.dtype = torch.float32, audio_only: bool = False,
         **pipeline_options) -> ClapPipeline:
    """Load a CLAP model by registry name (``clapkit.PRETRAINED``) or from a checkpoint path; with
    no name, ``clapkit-small``, which ships inside the package and loads offline.

    This is where a model is built and moved to ``device``. ``dtype="bfloat16"`` (or float16) keeps
    the weights float32 and runs under autocast (see :class:`ClapPipeline`): as fast as a model cast
    to bf16, and far closer to float32, since the residual stream and the norms keep their precision.
    On a CPU without native bf16 it warns and runs float32 (emulated bf16 is slower);
    ``dtype="int8"`` (CPU) quantises the audio side's Linear layers dynamically.
    A folder written by ``clapkit export --onnx`` runs with onnxruntime (``dtype="int8"``: its int8
    audio graph).
    ``variant`` names the architecture of a path whose keys do not say it; ``tokenizer`` is a hub
    name or a local folder (default: the model's own). ``audio_only`` neither builds nor loads the
    text tower (for jobs that only embed audio: less memory, faster start). Other options go to
    :class:`ClapPipeline`.
    """
    quantize = isinstance(dtype, str) and dtype.lower() in INT8
    device, dtype = resolve_device(device), torch.float32 if quantize else resolve_dtype(dtype)
    if quantize and device.type != "cpu":
        raise UsageError(f"dtype: int8 (dynamic quantisation) runs on the CPU, not {device}; use bfloat16 there")
    if dtype is torch.bfloat16 and device.type == "cpu" and not cpu_has_native_bf16():
        import warnings

        warnings.warn("dtype: this CPU has no native bf16 (AVX512-BF16 or AMX), where bf16 runs slower than "
                      "float32; running float32 instead", stacklevel=2)
        dtype = torch.float32
    if variant is not None and variant not in list_configs():  # named before any file is read
        raise UsageError(f"variant: unknown {variant!r}; known: {', '.join(list_configs())}")
    if str(name_or_path) in PRETRAINED or not Path(name_or_path).exists():
        model, config, _ = load_pretrained(str(name_or_path), audio_only_model=audio_only)  # names the known ones
    elif is_onnx_folder(name_or_path):
        if device.type != "cpu" or dtype is not torch.float32:
            raise UsageError(f"{name_or_path}: an ONNX export runs on the CPU in float32 (or dtype='int8')")
        model, config = load_onnx(name_or_path, int8=quantize)
        return ClapPipeline(model, config, tokenizer, **pipeline_options)
    else:
        model, config = load_checkpoint(name_or_path, variant, audio_only_model=audio_only)
    model = model.to(device).eval()
    if quantize:
        model = _quantized(model)
    mixed = None if dtype is torch.float32 else dtype
    return ClapPipeline(model, config, tokenizer, autocast=mixed, **pipeline_options)
