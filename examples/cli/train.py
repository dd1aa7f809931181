"""The project's entry point: ``python train.py fit --config base.yaml``."""

import torch
from lightning.pytorch.cli import LightningCLI


def main() -> None:
    torch.set_num_threads(1)  # a model this small trains fastest on one thread
    # no logger in base.yaml, so every fit writes its config.yaml to the same folder
    LightningCLI(save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
