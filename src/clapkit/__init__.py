"""clapkit: contrastive language-audio pretraining — released models, training and evaluation.

    import clapkit
    m = clapkit.load("msclap-2023")
    m.classify(["dog.wav"], labels=["dog", "rain"]).top(1)
"""
from .inference import Classification, ClapModel, load
from .weights.registry import PRETRAINED

__version__ = "0.1.0"
__all__ = ["load", "ClapModel", "Classification", "PRETRAINED"]
