"""The Lightning adapter: HPOCallback (works with pytorch_lightning and lightning.pytorch)."""

from hpo_lightning.lightning._callback import HPOCallback

__all__ = ["HPOCallback"]
