"""takeoff: an inference server for small fine-tuned seq2seq and classifier models."""

__version__ = "0.1.0"
