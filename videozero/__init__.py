"""videozero: self-evolving video language models from evidence-anchored questions, no human labels."""

__version__ = "0.1.0"
