"""Sweeping LightningCLI projects with no code change (``cli:`` in a sweep file).

The example project (``examples/cli``, ``lightning.pytorch.cli``, a script) is swept from its
own YAML with a recording model swapped in by an extra config; a ``pytorch_lightning.cli``
subclass is swept through ``cli: {class: ...}``. Real fits, real CLI parsers.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hpo_lightning.cli import main
from hpo_lightning.exceptions import ConfigError
from hpo_lightning.lightning._cli_spec import CLISpec, cli_value
from hpo_lightning.storage import open_storage
from hpo_lightning.sweep._config import config_from_dict

TESTS = Path(__file__).parent
EXAMPLE = TESTS.parent / "examples" / "cli"
PREFIX = "model.init_args."


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.delenv("HPO_LIGHTNING_STORAGE", raising=False)


def example_sweep(tmp_path: Path, **changes: object) -> Path:
    """The example's sweep file, pointed at the example's script and configs plus one that
    swaps in the recording model, 4 trials, stored in tmp_path."""
    data = yaml.safe_load((EXAMPLE / "sweep.yaml").read_text())
    record = tmp_path / "record.yaml"
    record.write_text("model:\n  class_path: cli_recording.RecordingClassifier\n")
    data["cli"] = {
        "script": str(EXAMPLE / "train.py"),
        "config": [str(EXAMPLE / "base.yaml"), str(record)],
        "args": ["--trainer.max_epochs=2", f"--trainer.default_root_dir={tmp_path}"],
    }
    data.update({"n_trials": 4, "tuner": {"name": "tpe", "n_startup_trials": 2}, **changes})
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_the_example_cli_project_is_swept_from_its_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = tmp_path / "records.jsonl"
    monkeypatch.setenv("HPO_CLI_RECORD", str(records))
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(example_sweep(tmp_path)), "--quiet"]) == 0

    store = open_storage(str(tmp_path / "hpo_lightning.db"))
    sweep = store.get_sweep("digits-cli")
    trials = sorted(store.get_trials(sweep.id), key=lambda t: t.number)
    store.close()
    assert sweep.definition["monitor"] == "val_acc" and sweep.definition["mode"] == "max"
    assert [t.state.value for t in trials] == ["complete"] * 4
    assert all(0 < t.value <= 1 and t.epochs == 2 for t in trials)

    seen = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(seen) == 4
    for trial, got in zip(trials, seen):
        # the callback was injected into the CLI's Trainer, bound to this trial
        assert "HPOCallback" in got["callbacks"] and "EarlyStopping" in got["callbacks"]
        assert got["trial_params"] == trial.params
        assert got["argv"] == sys.argv  # the process's command line is left alone
        # every override reached the model (and the datamodule); inactive ones stayed default
        for key, value in trial.params.items():
            if key.startswith(PREFIX):
                assert got["hparams"][key[len(PREFIX) :]] == pytest.approx(value), key
        assert got["batch_size"] == trial.params["data.init_args.batch_size"]
        inactive = "momentum" if trial.params[PREFIX + "optimizer"] == "adam" else "beta1"
        assert PREFIX + inactive not in trial.params and got["hparams"][inactive] == 0.9

    # a worker started elsewhere joins from the stored definition alone (its space comes back
    # from JSON with sorted keys) and runs the CLI trial the same way
    store = open_storage(str(tmp_path / "hpo_lightning.db"))
    store.raise_n_trials(sweep.id, 5)
    store.close()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    db = str(tmp_path / "hpo_lightning.db")
    assert main(["worker", "--storage", db, "--sweep", "digits-cli", "--quiet"]) == 0
    store = open_storage(db)
    trials = store.get_trials(sweep.id)
    store.close()
    assert [t.state.value for t in trials] == ["complete"] * 5
    assert len(records.read_text().splitlines()) == 5


@pytest.mark.slow
def test_a_ddp_cli_trial_runs_on_both_ranks_with_the_callback(tmp_path: Path) -> None:
    """Lightning starts rank 1 by re-running the process's command line (the sweep's, left
    alone by the CLI adapter); rank 1 joins rank 0's trial and its CLI gets the same overrides
    and its own callback."""
    path = example_sweep(tmp_path, n_trials=1)
    data = yaml.safe_load(path.read_text())
    data["cli"]["args"] += ["--trainer.devices=2", "--trainer.strategy=ddp"]
    path.write_text(yaml.safe_dump(data))
    records = tmp_path / "records.jsonl"
    env = dict(os.environ, PYTHONPATH=str(TESTS), HPO_CLI_RECORD=str(records))
    env.pop("HPO_LIGHTNING_STORAGE", None)
    done = subprocess.run(
        [sys.executable, "-m", "hpo_lightning", "sweep", str(path), "--quiet"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    store = open_storage(str(tmp_path / "hpo_lightning.db"))
    trials = store.get_trials(store.get_sweep("digits-cli").id)
    store.close()
    assert [t.state.value for t in trials] == ["complete"]
    seen = [json.loads(line) for line in records.read_text().splitlines()]
    for t in trials:
        mine = [r for r in seen if r["trial_params"] == t.params]
        assert sorted(r["rank"] for r in mine) == [0, 1]
        assert all("HPOCallback" in r["callbacks"] for r in mine)
        assert mine[0]["hparams"] == mine[1]["hparams"]


@pytest.mark.slow
def test_a_bad_dotted_key_exits_2_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = example_sweep(tmp_path)
    path.write_text(path.read_text().replace("model.init_args.lr:", "model.init_args.lrr:"))
    assert main(["sweep", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "space key 'model.init_args.lrr'" in err and "Option 'lrr' is not accepted" in err
    assert "did you mean 'model.init_args.lr'?" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "hpo_lightning.db").exists()
    # a value the CLI's types refuse (a Literal) is caught the same way
    path.write_text(path.read_text().replace("lrr", "lr").replace("sgd:", "rmsprop:"))
    assert main(["sweep", str(path), "--quiet"]) == 2
    assert "'rmsprop' is refused by the CLI" in capsys.readouterr().err
    assert not (tmp_path / "hpo_lightning.db").exists()


@pytest.mark.slow
def test_monitor_and_mode_default_to_the_callbacks_unless_given(tmp_path: Path) -> None:
    data = yaml.safe_load(example_sweep(tmp_path).read_text())
    cfg = config_from_dict(data, base_dir=str(tmp_path))
    assert (cfg.monitor, cfg.mode) == ("val_acc", "max")  # the config's EarlyStopping
    assert cfg.objective == "hpo_lightning.lightning:fit_cli"
    assert cfg.objective_args["cli"]["subcommands"] is True
    cfg = config_from_dict({**data, "monitor": "val_loss"}, base_dir=str(tmp_path))
    assert (cfg.monitor, cfg.mode) == ("val_loss", "min")  # not the callback's mode
    cfg = config_from_dict({**data, "monitor": "val_loss", "mode": "max"}, base_dir=str(tmp_path))
    assert (cfg.monitor, cfg.mode) == ("val_loss", "max")


PL_BASE = """\
model:
  class_path: cli_project_pl.WineModel
trainer:
  max_epochs: 2
  accelerator: cpu
  logger: false
  enable_progress_bar: false
  enable_model_summary: false
  callbacks:
    - class_path: pytorch_lightning.callbacks.ModelCheckpoint
      init_args: {{monitor: val_loss, mode: min, dirpath: {ckpt}}}
"""


@pytest.mark.slow
def test_a_pytorch_lightning_cli_class_is_swept(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(PL_BASE.format(ckpt=tmp_path / "ckpt"))
    (tmp_path / "sweep.yaml").write_text(
        "name: wine\n"
        "cli: {class: 'cli_project_pl:WineCLI', config: [base.yaml]}\n"
        "n_trials: 2\nseed: 0\ntuner: random\n"
        "space:\n"
        "  model.init_args.lr: {type: float, low: 1e-3, high: 1e-1, log: true}\n"
        "  model.init_args.hidden: [4, 16]\n"
    )
    assert main(["sweep", str(tmp_path / "sweep.yaml"), "--quiet"]) == 0
    store = open_storage(str(tmp_path / "hpo_lightning.db"))
    sweep = store.get_sweep("wine")
    trials = store.get_trials(sweep.id)
    store.close()
    assert (sweep.definition["monitor"], sweep.definition["mode"]) == ("val_loss", "min")
    assert sweep.definition["objective_args"]["cli"]["class"] == "cli_project_pl:WineCLI"
    assert [t.state.value for t in trials] == ["complete", "complete"]
    assert all(math.isfinite(t.value) for t in trials)
    assert len(list((tmp_path / "ckpt").glob("*.ckpt"))) == 2  # the config's own callback ran


@pytest.mark.slow
def test_the_python_api_sweeps_a_cli_class(tmp_path: Path) -> None:
    import hpo_lightning as hl
    from hpo_lightning.lightning import cli_objective

    (tmp_path / "base.yaml").write_text(PL_BASE.format(ckpt=tmp_path / "ckpt"))
    space = {"model.init_args.lr": hl.Float(1e-3, 1e-1, log=True)}
    options = cli_objective(
        {"class": "cli_project_pl:WineCLI", "config": ["base.yaml"]}, space, base_dir=str(tmp_path)
    )
    assert (options["monitor"], options["mode"]) == ("val_loss", "min")
    result = hl.run_sweep(
        name="wine-py", space=space, n_trials=1, storage=str(tmp_path / "s.db"), **options
    )
    assert result.n_complete == 1


# --- fast checks of the cli section --------------------------------------------------------------
@pytest.mark.parametrize(
    ("cli", "match"),
    [
        ({"config": ["base.yaml"]}, "exactly one of `script: train.py` or `class: mod:Name`"),
        ({"script": "train.py", "class": "a:B"}, "exactly one of"),
        ({"script": "nope.py"}, r"`cli.script`: .*nope.py does not exist"),
        ({"class": "no_colon"}, "`cli.class` must be 'module:Name'"),
        ({"script": "train.py", "configs": ["base.yaml"]}, "did you mean 'config'"),
        ({"script": "train.py", "config": [3]}, "`cli.config` must be a string or a list"),
        ("train.py", "`cli` must be a mapping"),
    ],
)
def test_bad_cli_sections_are_refused(cli: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CLISpec.from_dict(cli, str(EXAMPLE))


def test_cli_cannot_be_combined_with_an_objective() -> None:
    data = {
        "name": "x",
        "cli": {"script": "train.py"},
        "objective": "m:f",
        "space": {"a": [1]},
        "monitor": "m",
    }
    with pytest.raises(ConfigError, match="`objective` cannot be combined with `cli`"):
        config_from_dict(data, base_dir=str(EXAMPLE))


def test_a_class_that_is_no_cli_is_refused(tmp_path: Path) -> None:
    data = {"name": "x", "cli": {"class": "math:pi"}, "space": {"a": [1]}, "monitor": "m"}
    with pytest.raises(ConfigError, match="neither a LightningCLI nor a function"):
        config_from_dict(data, base_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-05, "1.0e-05"),
        (0.5, "0.5"),
        (3, "3"),
        (True, "true"),
        (None, "null"),
        ("sgd", "sgd"),
        ("true", '"true"'),
        ("1", '"1"'),
    ],
)
def test_values_are_written_as_the_cli_reads_them_back(value: object, text: str) -> None:
    assert cli_value(value) == text
    assert yaml.safe_load(text) == value


def test_the_example_files_are_the_ones_documented() -> None:
    data = yaml.safe_load((EXAMPLE / "sweep.yaml").read_text())
    assert data["cli"] == {"script": "train.py", "config": ["base.yaml"]}
    assert "choices" in data["space"]["model.init_args.optimizer"]
