"""Offline test helpers: locally generated checkpoints and audio, no network."""
