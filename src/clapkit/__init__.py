"""clapkit: contrastive language-audio pretraining — released models, training and evaluation.

    import clapkit
    m = clapkit.load("msclap-2023")
    m.classify(["dog.wav"], labels=["dog", "rain"]).top(1)
"""
__version__ = "0.1.0"
__all__ = ["load", "ClapPipeline", "Classification", "ClapkitError", "PRETRAINED"]


def __getattr__(name: str):
    # Lazy, so that `import clapkit.audio` (data tools, training workers) does not load the models.
    if name in ("load", "ClapPipeline", "Classification"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "ClapkitError":
        from .errors import ClapkitError

        return ClapkitError
    if name == "PRETRAINED":
        from .weights.registry import PRETRAINED

        return PRETRAINED
    raise AttributeError(f"module 'clapkit' has no attribute {name!r}")
