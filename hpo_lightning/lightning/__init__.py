"""The Lightning adapter: HPOCallback (works with pytorch_lightning and lightning.pytorch), and
sweeps of LightningCLI projects (``cli_objective``, the ``cli:`` key of a sweep file)."""

from hpo_lightning.lightning._callback import HPOCallback
from hpo_lightning.lightning._cli import CLI_OBJECTIVE, cli_objective, fit_cli

__all__ = ["CLI_OBJECTIVE", "HPOCallback", "cli_objective", "fit_cli"]
