"""Training: contrastive pretraining and fine-tuning (builds on the library; the library never imports it)."""
