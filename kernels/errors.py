"""Errors of model loading, shared by the modules that read a model directory."""
from __future__ import annotations


class ModelLoadError(Exception):
    """A model directory that cannot be served; the message is meant for the person who gave it."""
