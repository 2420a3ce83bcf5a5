"""Text side: tokenizers for the text towers (and the captioner's decoder)."""
from .tokenizer import TextTokenizer, TokenizerError, load_tokenizer

__all__ = ["TextTokenizer", "TokenizerError", "load_tokenizer"]
