"""A subclass of the example CLI project's model that records, from inside the fit, what it
received (named by ``class_path`` in a test's extra config; the example stays unchanged)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

_EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "cli")
if _EXAMPLE not in sys.path:  # importable when pytest collects this file for doctests too
    sys.path.insert(0, _EXAMPLE)

from digits_cli import DigitsClassifier  # noqa: E402


class RecordingClassifier(DigitsClassifier):
    def on_fit_start(self) -> None:
        injected = [cb for cb in self.trainer.callbacks if type(cb).__name__ == "HPOCallback"]
        record: dict[str, Any] = {
            "hparams": dict(self.hparams),
            "batch_size": self.trainer.datamodule.batch_size,
            "callbacks": [type(cb).__name__ for cb in self.trainer.callbacks],
            "trial_params": dict(injected[0].trial.params) if injected else None,
            "argv": list(sys.argv),
            "rank": self.global_rank,
        }
        with open(os.environ["HPO_CLI_RECORD"], "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
