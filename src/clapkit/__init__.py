"""clapkit: contrastive language-audio pretraining — released models, training and evaluation."""
__version__ = "0.1.0"
