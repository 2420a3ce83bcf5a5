"""The one tiny random-weight CLAP config of the test suite (HTSAT + GPT-2 with a few thousand
parameters per block, 16 kHz, 0.5 s windows), shared by the training, search and evaluation tests."""
from __future__ import annotations

RATE = 16000


def tiny_config(name: str, *, depths: tuple[int, ...] = (1, 1), dropout: float | None = None) -> dict:
    """A checked model config as a dict. ``dropout`` sets the HTSAT and projection dropout (the
    projection keeps msclap's 0.5 when it is None)."""
    from clapkit.models.config import get_config, parse_config

    config = get_config("msclap-2023").to_dict()
    config.update(name=name, embed_dim=16)
    if dropout is not None:
        config.update(projection_dropout=dropout)
    config["audio"].update(out_dim=16, args={"embed_dim": 8, "depths": list(depths), "num_heads": [1, 2],
                                             "window_size": 4, "spec_size": 64, "mel_bins": 32, "freq_ratio": 2,
                                             "drop_rate": dropout or 0.0, "drop_path_rate": 0.0})
    config["audio"]["frontend"].update(sample_rate=RATE, clip_seconds=0.5, mel_sample_rate=RATE, fmax=7000, n_mels=32)
    config["text"].update(out_dim=16, pooling="last", args={"vocab_size": 50257, "n_positions": 64, "n_embd": 16,
                                                            "n_layer": 1, "n_head": 2})
    parse_config(config, name)
    return config
