"""``clapkit convert SRC --out DIR``: any supported checkpoint to clapkit's own format;
``clapkit export SRC --onnx DIR``: its encoders as ONNX graphs."""
from __future__ import annotations

import sys


def cmd_convert(args) -> int:
    import torch

    from ..pipeline import load
    from ..weights.convert import convert_checkpoint

    out, config = convert_checkpoint(args.source, args.out, variant=args.variant, tokenizer=args.tokenizer,
                                     slim_text=args.slim)
    print(f"wrote {config.name} ({config.audio.arch} + {config.text.arch if config.text else 'no text tower'}, "
          f"{config.embed_dim}-d) to {out}", file=sys.stderr)
    if args.check:
        # The converted folder must give the source's embeddings, bit for bit, on a fixed probe.
        original, converted = load(args.source, variant=args.variant, tokenizer=args.tokenizer), load(out)
        probe = torch.sin(torch.arange(original.clip_samples // 2) * 0.05).numpy()
        same = torch.equal(original.embed_audio(probe, sample_rate=original.sample_rate),
                           converted.embed_audio(probe, sample_rate=converted.sample_rate))
        if config.text is not None:
            same = same and torch.equal(original.embed_text(["a dog barks"]), converted.embed_text(["a dog barks"]))
        print(f"check: the converted model's embeddings {'equal' if same else 'DIFFER FROM'} the source's", file=sys.stderr)
        return 0 if same else 1
    return 0


def cmd_export(args) -> int:
    import torch

    from ..pipeline import load
    from ..weights.convert import export_checkpoint

    out, config = export_checkpoint(args.source, args.onnx, variant=args.variant, tokenizer=args.tokenizer,
                                    int8=args.int8)
    print(f"wrote {config.name} as ONNX to {out}", file=sys.stderr)
    if not args.check:
        return 0
    # The exported graphs must give the torch model's embeddings within 1e-4 on a fixed probe.
    original = load(args.source, variant=args.variant, tokenizer=args.tokenizer)
    probe = torch.sin(torch.arange(original.clip_samples // 2) * 0.05).numpy()
    worst = {}
    for name, dtype in [("float32", "float32")] + ([("int8", "int8")] if args.int8 else []):
        exported = load(out, dtype=dtype)
        a, b = (m.embed_audio(probe, sample_rate=m.sample_rate, normalize=False) for m in (original, exported))
        worst[f"audio {name}"] = (a - b).abs().max().item() if name == "float32" else \
            torch.nn.functional.cosine_similarity(a, b).min().item()
    if config.text is not None:
        a, b = original.embed_text(["a dog barks"], normalize=False), load(out).embed_text(["a dog barks"], normalize=False)
        worst["text float32"] = (a - b).abs().max().item()
    passed = all(v <= 1e-4 for k, v in worst.items() if "float32" in k) and worst.get("audio int8", 1.0) >= 0.99
    figures = ", ".join(f"{k} {'cosine' if 'int8' in k else 'max |diff|'} {v:.3g}" for k, v in worst.items())
    print(f"check: {figures}: {'ok' if passed else 'FAILED (float32 needs <= 1e-4, int8 cosine >= 0.99)'}",
          file=sys.stderr)
    return 0 if passed else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("convert", help="write any supported checkpoint in clapkit's format",
                              description="Convert an msclap .pth, a LAION-CLAP .pt, a Hugging Face ClapModel "
                                          "folder or a clapkit folder into a clapkit folder (model.safetensors + "
                                          "config.json, with the tokenizer when it is a local folder).")
    p.add_argument("source", help="checkpoint file or folder")
    p.add_argument("--out", required=True, help="the new folder to write (must not exist, or be empty)")
    p.add_argument("--variant", help="architecture of a checkpoint whose keys do not say it")
    p.add_argument("--tokenizer", help="a local tokenizer folder to ship with the converted model")
    p.add_argument("--slim", action="store_true",
                   help="leave out a text encoder that equals the config's declared init (a locked MiniLM): "
                        "it is read from its installed package at load")
    p.add_argument("--check", action="store_true",
                   help="load both and compare their embeddings of a probe clip and text (exit 1 if they differ)")
    p.set_defaults(handler=cmd_convert)

    e = subparsers.add_parser("export", help="write a model's encoders as ONNX graphs (onnxruntime runs them)",
                              description="Export the audio and text encoders of a registry model or checkpoint "
                                          "to ONNX; `clapkit.load(DIR)` and --model DIR run them with onnxruntime.")
    e.add_argument("source", help="registry name, checkpoint file or folder")
    e.add_argument("--onnx", required=True, metavar="DIR", help="the new folder to write (must not exist, or be empty)")
    e.add_argument("--int8", action="store_true", help="also an int8 audio graph (onnxruntime dynamic quantisation)")
    e.add_argument("--variant", help="architecture of a checkpoint whose keys do not say it")
    e.add_argument("--tokenizer", help="a local tokenizer folder to ship with the export")
    e.add_argument("--check", action="store_true",
                   help="compare the export's embeddings with the torch model's (float32 within 1e-4, int8 "
                        "cosine at least 0.99; exit 1 otherwise)")
    e.set_defaults(handler=cmd_export)
