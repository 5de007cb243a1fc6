"""Datasets, preloaded as tensors."""
