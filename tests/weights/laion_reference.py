"""Run inside a side environment that has ``laion_clap`` (LAION-CLAP's own model code): build its CLAP
(HTSAT-tiny + RoBERTa-base, unfused or with aff_2d fusion) with random weights, save the checkpoint
as LAION's training does (``{"state_dict": ...}``, DDP's ``module.``), and record its embeddings.

    python laion_reference.py OUT_DIR unfused|fusion

Writes OUT_DIR/laion.pt and OUT_DIR/reference.npz (waveforms or fusion mels in, embeddings out).
"""
import sys
import types
from importlib.machinery import ModuleSpec
from pathlib import Path

import numpy as np
import torch
from transformers import RobertaConfig, RobertaModel

# laion_clap imports torchvision for image utilities the audio model never uses; torchvision would
# need another torch build, so a stub stands in (after transformers is imported, which probes it).
for name in ("torchvision", "torchvision.ops", "torchvision.ops.misc"):
    module = types.ModuleType(name)
    module.__spec__ = ModuleSpec(name, None)
    sys.modules[name] = module
sys.modules["torchvision.ops.misc"].FrozenBatchNorm2d = type("FrozenBatchNorm2d", (), {})
# roberta-base's architecture without the download (LAION calls from_pretrained('roberta-base')).
RobertaModel.from_pretrained = classmethod(lambda cls, name: cls(RobertaConfig(layer_norm_eps=1e-5, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)))

# The package __init__ files pull in the training and image code; only the model modules are loaded.
import importlib.util  # noqa: E402

root = Path(importlib.util.find_spec("laion_clap").submodule_search_locations[0])
for name, folder in (("laion_clap", root), ("laion_clap.clap_module", root / "clap_module")):
    package = types.ModuleType(name)
    package.__path__ = [str(folder)]
    sys.modules[name] = package
from laion_clap.clap_module.model import CLAP  # noqa: E402

out, kind = Path(sys.argv[1]), sys.argv[2]
fusion = kind == "fusion"
torch.manual_seed(0)
audio_cfg = {"audio_length": 1024, "clip_samples": 480000, "mel_bins": 64, "sample_rate": 48000, "window_size": 1024,
             "hop_size": 480, "fmin": 50, "fmax": 14000, "class_num": 527, "model_type": "HTSAT", "model_name": "tiny"}
text_cfg = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12, "model_type": "roberta"}
model = CLAP(768, audio_cfg, text_cfg, enable_fusion=fusion, fusion_type="aff_2d" if fusion else "None").eval()
generator = torch.Generator().manual_seed(1)
with torch.no_grad():  # every weight random: LAION's init leaves many at constants that hide a mis-mapped key
    for name, p in model.named_parameters():
        if "_extractor." in name:  # the STFT kernels and mel bank: LAION's front end, kept
            continue
        if p.ndim > 1:
            p.copy_(torch.randn(p.shape, generator=generator) / p[0].numel() ** 0.5)
        elif name.startswith("logit_scale"):
            p.fill_(2.0 if name.endswith("_a") else 2.5)
        else:
            p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=generator))
    for name, b in model.named_buffers():
        if name.endswith("running_var"):
            b.copy_(0.5 + torch.rand(b.shape, generator=generator))
        elif name.endswith("running_mean"):
            b.copy_(0.3 * torch.randn(b.shape, generator=generator))
torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, out / "laion.pt")

rng = np.random.default_rng(0)
ids = torch.tensor([[0, 250, 4, 9000, 2, 1, 1], [0, 77, 31337, 12, 400, 18, 2]])
mask = (ids != 1).long()
with torch.no_grad():
    text = model.get_text_embedding({"input_ids": ids, "attention_mask": mask})
    if fusion:
        mel = torch.from_numpy(rng.standard_normal((2, 4, 1001, 64)).astype(np.float32) * 10 - 40)
        longer = torch.tensor([[True], [False]])
        audio = model.get_audio_embedding([{"mel_fusion": m, "longer": l} for m, l in zip(mel, longer)])
        inputs = {"mel_fusion": mel.numpy(), "longer": longer.numpy()}
    else:
        wave = (0.2 * rng.standard_normal((2, 480000))).astype(np.float32)
        audio = model.get_audio_embedding([{"waveform": torch.from_numpy(w)} for w in wave])
        inputs = {"waveform": wave}
np.savez(out / "reference.npz", ids=ids.numpy(), mask=mask.numpy(), text=text.numpy(), audio=audio.numpy(), **inputs)
print("ok")
