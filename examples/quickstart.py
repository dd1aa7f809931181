"""Quick start: tune a Lightning MLP on scikit-learn's digits with TPE (under a minute on CPU).

Run:  cd examples && python quickstart.py
"""

import torch
from digits import DigitsData, DigitsMLP, quiet_trainer

import hpo_lightning as hl

# A model this small trains fastest on one thread (as the sweep objective in digits.py does):
# with one thread per core, a busy machine makes every epoch several times slower.
torch.set_num_threads(1)

space = hl.SearchSpace(
    {
        "lr": hl.Float(1e-4, 1e-1, log=True),
        "hidden": hl.Int(16, 256, log=True),
        "dropout": hl.Float(0.0, 0.5),
        "optimizer": hl.Categorical(["adam", "sgd"]),
    }
)
tuner = hl.make_tuner("tpe", space, mode="max", seed=0, max_trials=20)
tracker = hl.ExperimentTracker("quickstart.db", sweep="quickstart")
callback = hl.HPOCallback(tuner, monitor="val_acc", mode="max", tracker=tracker)
data = DigitsData()

while (params := tuner.suggest()) is not None:
    quiet_trainer(max_epochs=6, callbacks=[callback]).fit(DigitsMLP(**params), datamodule=data)
    print(f"trial {callback.trial.number:2d}  val_acc={callback.best:.4f}  {params}")

best = tuner.best
print(f"best val_acc={best.value:.4f} with {best.params}")
print(f"{len(tracker.trials())} trials stored in quickstart.db (sweep 'quickstart')")
