"""Data: the common record type, dataset loaders and the synthetic multimodal world."""
