"""``clapkit convert SRC --out DIR``: any supported checkpoint to clapkit's own format."""
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
