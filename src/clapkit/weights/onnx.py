"""ONNX export of a CLAP model's two encoders, and an onnxruntime model the pipeline runs as it runs
a torch one.

An exported folder holds ``audio.onnx`` (``waveform``: windows at the model's rate, ``(batch,
samples)`` -> ``audio_embedding``, un-normalised; the log-mel front end is part of the graph),
``text.onnx`` (``input_ids``, ``attention_mask`` -> ``text_embedding``, un-normalised), optionally ``audio.int8.onnx``
(onnxruntime's dynamic int8 quantisation of the audio graph's MatMuls, per channel, the log-mel
front end left in float), and ``config.json``: the
model config plus an ``onnx`` entry with the logit scale. Decoding, resampling, windowing and
tokenising stay in clapkit, so an exported model gives the torch model's embeddings for any input.

Export goes through ``torch.onnx.export(dynamo=True)`` with the batch (and the text length)
dynamic. Attention is traced through the math kernel: the fused CPU attention's decomposition
reports output strides that a later reshape cannot view.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError
from ..models.config import ModelConfig
from .loading import folder_config

AUDIO, AUDIO_INT8, TEXT = "audio.onnx", "audio.int8.onnx", "text.onnx"
OPSET = 18


class _AudioGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.model.encode_audio(waveform)


class _TextGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(input_ids, attention_mask)


def _export(graph: nn.Module, inputs: tuple, names: list[str], output: str, dynamic: tuple, path: Path) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        program = torch.onnx.export(graph.eval(), inputs, dynamo=True, input_names=names,
                                    output_names=[output], dynamic_shapes=dynamic, opset_version=OPSET)
    program.save(str(path))


def export_onnx(model: nn.Module, config: ModelConfig, out: str | Path, *, int8: bool = False) -> Path:
    """Write ``model`` (a clapkit CLAP in float32) as ONNX graphs into the folder ``out``."""
    if config.caption is not None:
        raise WeightsError(f"{config.name}: a captioner cannot be exported to ONNX (only CLAP encoders)")
    if config.audio.fusion:
        raise WeightsError(f"{config.name}: a fusion model takes whole clips of any length; ONNX export "
                           "supports fixed windows only")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    batch = torch.export.Dim("batch")
    waveform = torch.zeros(2, config.clip_samples)
    _export(_AudioGraph(model), (waveform,), ["waveform"], "audio_embedding", ({0: batch},), out / AUDIO)
    onnx_entry: dict = {"audio": AUDIO}
    if config.text is not None:
        length = torch.export.Dim("length", max=config.text.max_length or 512)
        ids = torch.ones(2, 8, dtype=torch.long)
        _export(_TextGraph(model), (ids, torch.ones_like(ids)), ["input_ids", "attention_mask"], "text_embedding",
                ({0: batch, 1: length}, {0: batch, 1: length}), out / TEXT)
        onnx_entry |= {"text": TEXT, "logit_scale": float(model.logit_scale.detach())}
    if int8:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # The mel filterbank stays float: int8 mel energies become garbage once logged.
        front_end = [n.name for n in onnx.load(str(out / AUDIO)).graph.node if any("frontend" in i for i in n.input)]
        quantize_dynamic(str(out / AUDIO), str(out / AUDIO_INT8), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=front_end)
        onnx_entry["audio_int8"] = AUDIO_INT8
    (out / "config.json").write_text(json.dumps({**config.to_dict(), "onnx": onnx_entry}, indent=2) + "\n")
    return out


def is_onnx_folder(path: str | Path) -> bool:
    return (Path(path) / AUDIO).is_file() and (Path(path) / "config.json").is_file()


class OnnxClap(nn.Module):
    """The encoders of an exported folder behind ``CLAP``'s interface (``encode_audio``,
    ``encode_text``, ``logit_scale``), run by onnxruntime on the CPU with ``threads`` threads."""

    def __init__(self, folder: str | Path, *, int8: bool = False, threads: int | None = None) -> None:
        super().__init__()
        import onnxruntime

        folder = Path(folder)
        entry = json.loads((folder / "config.json").read_text())["onnx"]
        if int8 and "audio_int8" not in entry:
            raise WeightsError(f"{folder}: holds no int8 audio graph; export it with --int8")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        providers = ["CPUExecutionProvider"]
        audio = folder / entry["audio_int8" if int8 else "audio"]
        self.audio_session = onnxruntime.InferenceSession(str(audio), options, providers=providers)
        self.text_session = (onnxruntime.InferenceSession(str(folder / entry["text"]), options, providers=providers)
                             if "text" in entry else None)
        # A parameter so that the pipeline finds the device, and the scale it reports.
        self.logit_scale = nn.Parameter(torch.tensor([entry.get("logit_scale", 0.0)]), requires_grad=False)

    def encode_audio(self, waveform: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        out = torch.from_numpy(self.audio_session.run(None, {"waveform": waveform.float().cpu().numpy()})[0])
        return nn.functional.normalize(out, dim=-1) if normalize else out

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, normalize: bool = False,
                    **extra: torch.Tensor) -> torch.Tensor:
        if self.text_session is None:
            raise TypeError("this model has no text tower")
        feeds = {"input_ids": input_ids.long().cpu().numpy(), "attention_mask": attention_mask.long().cpu().numpy()}
        out = torch.from_numpy(self.text_session.run(None, feeds)[0])
        return nn.functional.normalize(out, dim=-1) if normalize else out


def load_onnx(folder: str | Path, *, int8: bool = False) -> tuple[OnnxClap, ModelConfig]:
    """The onnxruntime model of an exported folder and its model config."""
    folder = Path(folder)
    config = folder_config(folder / "config.json")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise WeightsError(f"{folder}: running an ONNX export needs onnxruntime (pip install onnxruntime)") from None
    return OnnxClap(folder, int8=int8), config
