"""How sweeps and trials map onto MLflow runs; shared by MLflowTracker and ``mlflow-sync``.

One *parent* run per sweep (tags ``hpo.role=sweep``, ``hpo.sweep=<name>``) and one nested
*child* run per trial (tags ``mlflow.parentRunId``, ``hpo.role=trial``,
``hpo.trial_number``). Runs are found by these tags before they are created, so every worker
of a sweep, a resumed sweep and a later ``mlflow-sync`` write into the same runs. Two
processes creating the same run at once each re-read the tags afterwards and keep the oldest
run; the other one is deleted.

Only this module and its callers import mlflow, and only when they are used.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import time
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from hpo_lightning._secrets import redact, redact_tree, without_masked_password
from hpo_lightning._trial import Mode, TrialState, is_better
from hpo_lightning.exceptions import missing_extra
from hpo_lightning.tracking._reach import apply_http_defaults, check_reachable

# MLflow's limits (mlflow.utils.validation); kept here so that importing this module is cheap.
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000

ROLE, SWEEP, NUMBER, PARENT = "hpo.role", "hpo.sweep", "hpo.trial_number", "mlflow.parentRunId"
STATE, BEST, BEST_TRIAL, BEST_VALUE = "hpo.state", "hpo.best", "hpo.best_trial", "hpo.best_value"
TRIAL_VALUE, SWEEP_BEST = "trial_value", "best_value"
# several objectives: each trial run on the Pareto front is tagged pareto_front=true (false
# once it leaves it); the parent keeps the front's trial numbers to know what changed
PARETO, PARETO_TRIALS = "pareto_front", "hpo.pareto_trials"
# MLflow's portable name characters (its Windows rule; elsewhere it also allows ':')
_BAD_CHARS = re.compile(r"[^/\w.\- ]")
KIND, KIND_RUNS = "mlflow.experimentKind", "custom_model_development"

STATUS = {
    TrialState.RUNNING: "RUNNING",
    TrialState.COMPLETE: "FINISHED",
    TrialState.FAILED: "FAILED",
    TrialState.PRUNED: "KILLED",
    TrialState.INTERRUPTED: "KILLED",
    TrialState.LOST: "KILLED",
}


def import_mlflow() -> Any:
    """The ``mlflow`` module, or MissingDependencyError naming the extra that installs it."""
    try:
        import mlflow
    except ImportError as exc:
        raise missing_extra("mlflow", "mlflow", "MLflow tracking") from exc
    return mlflow


def mlflow_name(key: str) -> str:
    """A metric/param name MLflow accepts: other characters become ``_``, no path tricks.

    Example:
        >>> [mlflow_name(k) for k in ("val_acc@1", "val/loss", "/abs", "a//b")]
        ['val_acc_1', 'val/loss', '_abs', 'a__b']
    """
    key = _BAD_CHARS.sub("_", key) or "_"
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith(("..", "/")):
        key = key.replace("/", "_")
        key = "_" + key[1:] if key.startswith(".") else key
    if len(key) <= MAX_KEY:
        return key
    # a stable suffix (not hash(): it differs between processes) keeps cut keys distinct
    return key[: MAX_KEY - 9] + "-" + format(zlib.crc32(key.encode()), "08x")


def _text(value: Any, limit: int) -> str:
    s = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """A nested mapping as MLflow params: dotted keys, JSON leaves, cut to MLflow's limits.

    Example:
        >>> flatten({"tuner": {"name": "tpe", "options": {"gamma": 0.25}}, "seed": 0})
        {'tuner.name': 'tpe', 'tuner.options.gamma': '0.25', 'seed': '0'}
    """
    out: dict[str, str] = {}
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif prefix:
        out[mlflow_name(prefix)] = _text(value, MAX_PARAM_VALUE)
    return out


def sweep_params(definition: Mapping[str, Any]) -> dict[str, str]:
    """The parent run's params: the sweep definition without its name (and passwords)."""
    return flatten(redact_tree({k: v for k, v in definition.items() if k != "name"}))


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class MlflowRuns:
    """Find-or-create of parent/child runs in one experiment, and what is logged on them.

    Not thread-safe: use one instance per thread. Caches run ids, so a process asks the
    server for a sweep's runs once.

    Example:
        >>> runs = MlflowRuns("sqlite:///mlflow.db", "my-experiment")   # doctest: +SKIP
        >>> parent = runs.parent("sweep-1", {"mode": "min"})            # doctest: +SKIP
    """

    def __init__(self, tracking_uri: str | None, experiment_name: str) -> None:
        mlflow = import_mlflow()
        from mlflow.tracking import MlflowClient

        if tracking_uri:  # a URI read back from a store has its password masked: use the env's
            tracking_uri = without_masked_password(tracking_uri)
        apply_http_defaults(tracking_uri)
        check_reachable(tracking_uri)  # seconds, not MLflow's minutes of retries
        self._entities = mlflow.entities
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = self._experiment(experiment_name)
        self._parents: dict[str, str] = {}
        self._children: dict[str, dict[int, str]] = {}

    def _experiment(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            try:
                return str(self.client.create_experiment(name, tags={KIND: KIND_RUNS}))
            except Exception:  # created by another process meanwhile
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise
        if KIND not in exp.tags:
            # MLflow 3's UI opens an untagged experiment on its GenAI traces overview
            self.client.set_experiment_tag(exp.experiment_id, KIND, KIND_RUNS)
        return str(exp.experiment_id)

    def _search(self, filter_string: str) -> list[Any]:
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string,
                max_results=1000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _keep_oldest(self, runs: list[Any], mine: str) -> str:
        """After a create: the oldest of the runs with our tags wins; ours is deleted if not."""
        if not runs:
            return mine
        oldest = min(runs, key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id
        if oldest != mine:
            self.client.delete_run(mine)
        return str(oldest)

    # --- parent --------------------------------------------------------------------------
    def find_parent(self, sweep: str) -> str | None:
        if sweep in self._parents:
            return self._parents[sweep]
        # names may hold quotes; filter by role on the server and by name here
        found = [
            r for r in self._search(f"tags.`{ROLE}` = 'sweep'") if r.data.tags.get(SWEEP) == sweep
        ]
        if found:
            self._parents[sweep] = found[0].info.run_id
            return self._parents[sweep]
        return None

    def parent(self, sweep: str, definition: Mapping[str, Any] | None = None) -> str:
        """The sweep's parent run id, created (RUNNING) if missing; new params are logged."""
        run_id = self.find_parent(sweep)
        if run_id is None:
            tags = {ROLE: "sweep", SWEEP: _text(sweep, MAX_TAG_VALUE)}
            mine = self.client.create_run(self.experiment_id, tags=tags, run_name=sweep)
            mine_id = mine.info.run_id
            again = [
                r
                for r in self._search(f"tags.`{ROLE}` = 'sweep'")
                if r.data.tags.get(SWEEP) == sweep
            ]
            run_id = self._keep_oldest(again, mine_id)
            self._parents[sweep] = run_id
        if definition:
            self._log_new_params(run_id, sweep_params(definition))
            tags = {f"hpo.{k}": _text(definition[k], MAX_TAG_VALUE) for k in ("mode", "monitor")}
            tuner = definition.get("tuner")
            if isinstance(tuner, Mapping) and "name" in tuner:
                tags["hpo.tuner"] = str(tuner["name"])
            self.set_tags(run_id, tags)
        return run_id

    def _log_new_params(self, run_id: str, params: Mapping[str, str]) -> None:
        # MLflow refuses to change a logged param (a resumed sweep may differ, e.g. n_trials)
        have = self.client.get_run(run_id).data.params
        new = [self._entities.Param(k, v) for k, v in params.items() if k not in have]
        for chunk in _chunks(new, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)

    # --- children ----------------------------------------------------------------------------
    def children(self, parent_id: str) -> dict[int, str]:
        """``{trial number: run id}`` of the parent's nested runs (oldest wins)."""
        if parent_id not in self._children:
            kids: dict[int, str] = {}
            for r in self._search(f"tags.`{PARENT}` = '{parent_id}'"):
                number = r.data.tags.get(NUMBER)
                if number is not None and number.isdigit():
                    kids.setdefault(int(number), r.info.run_id)
            self._children[parent_id] = kids
        return self._children[parent_id]

    def child(self, parent_id: str, sweep: str, number: int, params: Mapping[str, Any]) -> str:
        """The trial's nested run id, created RUNNING with its params if missing."""
        kids = self.children(parent_id)
        if number in kids:
            return kids[number]
        tags = {
            PARENT: parent_id,
            ROLE: "trial",
            SWEEP: _text(sweep, MAX_TAG_VALUE),
            NUMBER: str(number),
            STATE: TrialState.RUNNING.value,
        }
        mine = self.client.create_run(self.experiment_id, tags=tags, run_name=f"trial-{number}")
        run_id = mine.info.run_id
        flat = flatten(dict(params))
        entities = [self._entities.Param(k, v) for k, v in flat.items()]
        for chunk in _chunks(entities, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)
        same = self._search(f"tags.`{PARENT}` = '{parent_id}' and tags.`{NUMBER}` = '{number}'")
        kids[number] = self._keep_oldest(same, run_id)
        return kids[number]

    # --- logging -------------------------------------------------------------------------------
    def log_epochs(
        self, run_id: str, epochs: Mapping[int, Mapping[str, float]], timestamp_ms: int
    ) -> int:
        """Log ``{epoch: {name: value}}`` with ``step=epoch`` in batches; return the count."""
        metrics = [
            self._entities.Metric(mlflow_name(name), float(value), timestamp_ms, int(epoch))
            for epoch, row in sorted(epochs.items())
            for name, value in row.items()
        ]
        for chunk in _chunks(metrics, MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk)
        return len(metrics)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        entities = [self._entities.RunTag(k, _text(v, MAX_TAG_VALUE)) for k, v in tags.items()]
        for chunk in _chunks(entities, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, tags=chunk)

    def finish_child(
        self,
        run_id: str,
        state: TrialState,
        value: float | None,
        *,
        message: str | None = None,
        epochs: int | None = None,
    ) -> None:
        """Final value, state tags and the real status (pruned -> KILLED, tagged early stop)."""
        now = int(time.time() * 1000)
        tags = {STATE: state.value}
        if state is TrialState.PRUNED:
            tags["hpo.stopped_early"] = "true"
        if message:
            tags["hpo.message"] = redact(message)
        metrics = []
        if value is not None and not math.isnan(value):
            metrics.append(self._entities.Metric(TRIAL_VALUE, float(value), now, epochs or 0))
        self.client.log_batch(
            run_id,
            metrics=metrics,
            tags=[self._entities.RunTag(k, _text(v, MAX_TAG_VALUE)) for k, v in tags.items()],
        )
        if state.is_finished:
            self.client.set_terminated(run_id, STATUS[state])

    def update_best(
        self, parent_id: str, child_id: str, number: int, value: float, mode: Mode
    ) -> bool:
        """Make this trial the sweep's best if it beats the parent's recorded best."""
        tags = self.client.get_run(parent_id).data.tags
        current = tags.get(BEST_VALUE)
        if not is_better(value, float(current) if current is not None else None, mode):
            return False
        old = tags.get("hpo.best_run_id")
        if old and old != child_id:
            self.client.set_tag(old, BEST, "false")
        self.client.set_tag(child_id, BEST, "true")
        self.set_tags(
            parent_id,
            {BEST_TRIAL: str(number), BEST_VALUE: repr(float(value)), "hpo.best_run_id": child_id},
        )
        now = int(time.time() * 1000)
        self.client.log_batch(
            parent_id, metrics=[self._entities.Metric(SWEEP_BEST, float(value), now, number)]
        )
        return True

    def update_front(
        self, parent_id: str, sweep: str, front: Mapping[int, Mapping[str, Any]]
    ) -> int:
        """Tag the runs of the trials on the Pareto front (``front``: number -> params)
        ``pareto_front=true``, and ``false`` those that left it; return the tags changed."""
        tags = self.client.get_run(parent_id).data.tags
        before = {int(n) for n in (tags.get(PARETO_TRIALS) or "").split(",") if n.isdigit()}
        now = set(front)
        if now == before:
            return 0
        children = self.children(parent_id)
        for number in sorted(before - now):
            if number in children:
                self.client.set_tag(children[number], PARETO, "false")
        for number in sorted(now - before):
            self.client.set_tag(self.child(parent_id, sweep, number, front[number]), PARETO, "true")
        self.client.set_tag(parent_id, PARETO_TRIALS, ",".join(map(str, sorted(now))))
        return len(now ^ before)

    def metric_steps(self, run_id: str, key: str) -> set[int]:
        return {m.step for m in self.client.get_metric_history(run_id, key)}
