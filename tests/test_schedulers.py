"""Schedulers: curves in, stop epochs out (table-driven); ASHA rungs; Hyperband brackets."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from hpo_lightning._trial import TrialState
from hpo_lightning.exceptions import UnknownNameError, UserInputError
from hpo_lightning.schedulers import (
    ASHAScheduler,
    AutoScheduler,
    Decision,
    HyperbandScheduler,
    LearningCurve,
    MedianStoppingScheduler,
    NoScheduler,
    Scheduler,
    make_scheduler,
    reported_value,
    scheduler_names,
)
from hpo_lightning.schedulers._asha import promoted, rung_epochs


def stop_epoch(
    scheduler: Scheduler,
    values: Sequence[float],
    peers: Sequence[Sequence[float]],
    *,
    mode: str = "min",
    trial: int = 99,
) -> int | None:
    """Run a trial epoch by epoch against finished peers; the epoch it is stopped at, or None."""
    others = [LearningCurve.of(i, p) for i, p in enumerate(peers)]
    for epoch in range(len(values)):
        curve = LearningCurve.of(trial, values[: epoch + 1])
        if scheduler.decide(curve, others, mode=mode) is Decision.STOP:  # type: ignore[arg-type]
            return epoch
    return None


def negate(rows: Sequence[Sequence[float]]) -> list[list[float]]:
    return [[-v for v in row] for row in rows]


# --- median stopping -------------------------------------------------------------------------
MEDIAN_PEERS = [[1.0, 0.8, 0.6, 0.4], [1.0, 0.9, 0.7, 0.5]]
# running averages at epoch 1: 0.9 and 0.95 (median 0.925); at epoch 2: 0.8, 0.8667 (0.8333)

MEDIAN_CASES = [
    # (warmup, min_trials, curve, peers, expected stop epoch)
    (1, 2, [1.0, 0.5, 0.3, 0.2], MEDIAN_PEERS, None),  # better than the median throughout
    (1, 2, [1.2, 1.1, 1.0, 0.9], MEDIAN_PEERS, 1),  # worse as soon as the rule applies
    (1, 2, [2.0, 0.92, 0.91, 0.1], MEDIAN_PEERS, 2),  # 0.92 < 0.925, then 0.91 > 0.833
    (3, 2, [1.2, 1.1, 1.0, 0.9], MEDIAN_PEERS, 3),  # warm-up protects the first 3 epochs
    (1, 3, [1.2, 1.1, 1.0, 0.9], MEDIAN_PEERS, None),  # only 2 peers: too few to judge
    (1, 1, [1.2, 1.1, 1.0], [[0.1]], None),  # a peer stopped at epoch 0 is no peer at epoch 1
    (0, 2, [1.2, 1.1], MEDIAN_PEERS, 0),  # no warm-up: judged after the first epoch
    (1, 2, [math.nan, math.nan, 0.1], MEDIAN_PEERS, 1),  # a diverged trial ranks last
    (1, 2, [1.5, 0.85, 0.7], [*MEDIAN_PEERS, [math.nan, math.nan]], None),  # NaN peer skipped
]


@pytest.mark.parametrize(("warmup", "min_trials", "curve", "peers", "expected"), MEDIAN_CASES)
def test_median_stop_epochs(warmup, min_trials, curve, peers, expected):
    s = MedianStoppingScheduler(warmup_epochs=warmup, min_trials=min_trials)
    assert stop_epoch(s, curve, peers) == expected
    # the same problem with "max" and every value negated stops at the same epoch
    assert stop_epoch(s, negate([curve])[0], negate(peers), mode="max") == expected


def test_median_uses_best_so_far_not_last_value():
    s = MedianStoppingScheduler(warmup_epochs=0, min_trials=2)
    # last value 0.99 is worse than the median 0.925, but the best so far (0.5) is not
    assert stop_epoch(s, [0.5, 0.99], MEDIAN_PEERS) is None


# --- ASHA ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("min_epochs", "eta", "max_epochs", "rungs"),
    [
        (1, 3, 20, (1, 3, 9)),
        (2, 2, 16, (2, 4, 8)),
        (5, 3, 5, ()),
        (1, 2, 1, ()),
        (1, 3, 27, (1, 3, 9)),
    ],
)
def test_asha_rungs(min_epochs, eta, max_epochs, rungs):
    assert rung_epochs(min_epochs, eta, max_epochs) == rungs
    s = ASHAScheduler(min_epochs=min_epochs, reduction_factor=eta, max_epochs=max_epochs)
    assert s.rungs == rungs


@pytest.mark.parametrize(
    ("loss", "peers", "eta", "expected"),
    [
        (0.5, [], 3, True),  # first at its rung: nobody to lose to
        (0.5, [0.4], 3, False),  # n=2 keeps 1: the better peer
        (0.4, [0.5], 3, True),
        (0.4, [0.4], 3, True),  # ties favour the trial
        (0.3, [0.1, 0.2, 0.4, 0.5, 0.6], 3, False),  # n=6 keeps 2; third
        (0.15, [0.1, 0.2, 0.4, 0.5, 0.6], 3, True),  # second
        (0.3, [0.1, 0.5, 0.6], 2, True),  # n=4, eta=2 keeps 2; second
        (0.55, [0.1, 0.5, 0.6], 2, False),  # third
        (math.inf, [0.9], 2, False),  # NaN (inf loss) loses to any finite value
    ],
)
def test_asha_promotion_rule(loss, peers, eta, expected):
    assert promoted(loss, peers, eta) is expected


# peers: five at rung 1 (epoch 0); only two reached rung 3 (epoch 2), the others were stopped
ASHA_PEERS = [
    [0.9],
    [0.8],
    [0.7],
    [0.6, 0.45, 0.4, 0.35, 0.3, 0.3, 0.3, 0.3, 0.3],
    [0.5, 0.4, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2],
]
ASHA_CASES = [
    # (curve, expected stop epoch) with min_epochs=1, eta=3, max_epochs=9: rungs after 1 and 3
    ([0.75, 0.1, 0.1], 0),  # 3 of 6 are better at rung 1 (keeps 2)
    ([0.55, 0.5, 0.35, 0.1, 0.1], 2),  # 2nd of 6 at rung 1; 2nd of 3 at rung 3 (keeps 1)
    ([0.55, 0.5, 0.25, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], None),  # best at rung 3; no rung after
    ([0.45, 2.0, 0.2], None),  # between rungs anything goes
    ([math.nan, 0.1], 0),  # a diverged trial ranks last
]


@pytest.mark.parametrize(("curve", "expected"), ASHA_CASES)
def test_asha_stop_epochs(curve, expected):
    s = ASHAScheduler(min_epochs=1, reduction_factor=3, max_epochs=9)
    assert stop_epoch(s, curve, ASHA_PEERS) == expected
    assert stop_epoch(s, negate([curve])[0], negate(ASHA_PEERS), mode="max") == expected


def test_asha_ignores_peers_that_did_not_report_at_the_rung():
    s = ASHAScheduler(min_epochs=2, reduction_factor=2, max_epochs=8)  # rungs after 2 and 4
    sparse = LearningCurve(0, ((0, 0.1), (2, 0.1)))  # validated every other epoch: no epoch 1
    curve = LearningCurve.of(1, [0.9, 0.9])
    assert s.decide(curve, [sparse], mode="min") is Decision.CONTINUE


# --- Hyperband -------------------------------------------------------------------------------
def test_hyperband_brackets_and_weights():
    s = HyperbandScheduler(min_epochs=1, reduction_factor=3, max_epochs=27, seed=0)
    assert [b.rungs for b in s.brackets] == [(1, 3, 9), (3, 9), (9,), ()]
    # Li et al. 2018: n_s = ceil((s_max + 1) / (s + 1) * eta**s) with s = 3, 2, 1, 0
    assert s.bracket_weights == pytest.approx([27 / 49, 12 / 49, 6 / 49, 4 / 49])
    s20 = HyperbandScheduler(min_epochs=1, reduction_factor=3, max_epochs=20)
    assert [b.rungs for b in s20.brackets] == [(1, 3, 9), (3, 9), (9,), ()]


@pytest.mark.parametrize("max_epochs", [20, 27, 52, 100])
def test_hyperband_last_bracket_never_stops(max_epochs):
    """Issue 17: with 52-epoch trials the last bracket stopped trials at epoch 27."""
    s = HyperbandScheduler(min_epochs=1, reduction_factor=3, max_epochs=max_epochs, seed=0)
    last = len(s.brackets) - 1
    assert s.brackets[last].rungs == ()
    mine = [t for t in range(2000) if s.bracket_of(t) == last]
    assert len(mine) >= 8
    peers = [LearningCurve.of(p, [0.1 * i] * max_epochs) for i, p in enumerate(mine[:5])]
    for t in mine[5:8]:  # worse than every peer of its bracket at every epoch
        for epoch in range(max_epochs):
            curve = LearningCurve.of(t, [9.0] * (epoch + 1))
            assert s.decide(curve, peers, mode="min") is Decision.CONTINUE


def test_hyperband_bracket_assignment_is_seeded():
    a = HyperbandScheduler(max_epochs=27, seed=7)
    b = HyperbandScheduler(max_epochs=27, seed=7)
    c = HyperbandScheduler(max_epochs=27, seed=8)
    first = [a.bracket_of(t) for t in range(40)]
    assert first == [b.bracket_of(t) for t in range(40)]
    assert first == [a.bracket_of(t) for t in range(40)]  # no state consumed between calls
    assert first != [c.bracket_of(t) for t in range(40)]
    counts = Counter(a.bracket_of(t) for t in range(4000))
    for bracket, weight in enumerate(a.bracket_weights):
        assert counts[bracket] / 4000 == pytest.approx(weight, abs=0.03)


def test_hyperband_compares_a_trial_only_within_its_bracket():
    s = HyperbandScheduler(min_epochs=1, reduction_factor=3, max_epochs=27, seed=0)
    by_bracket: dict[int, list[int]] = {}
    for t in range(200):
        by_bracket.setdefault(s.bracket_of(t), []).append(t)
    me, mate = by_bracket[0][:2]
    stranger = by_bracket[1][0]
    curve = LearningCurve.of(me, [0.9])
    # a better trial of another bracket does not count at this rung ...
    assert s.decide(curve, [LearningCurve.of(stranger, [0.1])], mode="min") is Decision.CONTINUE
    # ... a better trial of the same bracket does
    assert s.decide(curve, [LearningCurve.of(mate, [0.1])], mode="min") is Decision.STOP
    # the last bracket never stops anyone (Hyperband's s = 0: full budget)
    last, *mates = by_bracket[3]
    peers = [LearningCurve.of(t, [0.0] * 27) for t in mates]
    for epoch in range(27):
        curve = LearningCurve.of(last, [1.0] * (epoch + 1))
        assert s.decide(curve, peers, mode="min") is Decision.CONTINUE


def test_no_scheduler_never_stops():
    assert stop_epoch(NoScheduler(), [9.0, math.nan, 9.0], MEDIAN_PEERS) is None


# --- options, factory, namespace ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "options", "words"),
    [
        ("asha", {"reduction_factor": 1}, ["reduction_factor", ">= 2", "1"]),
        ("asha", {"min_epochs": 0}, ["min_epochs", ">= 1", "0"]),
        ("asha", {"min_epochs": 10, "max_epochs": 5}, ["min_epochs=10", "max_epochs=5", "<="]),
        ("hyperband", {"min_epochs": 30, "max_epochs": 20}, ["min_epochs=30", "max_epochs=20"]),
        ("hyperband", {"reduction_factor": 1.5}, ["reduction_factor", "1.5"]),
        ("hyperband", {"seed": -1}, ["seed", "-1"]),
        ("median", {"warmup_epochs": -1}, ["warmup_epochs", "-1"]),
        ("median", {"min_trials": 0}, ["min_trials", "0"]),
        ("median", {"min_trials": True}, ["min_trials", "True"]),
        ("asha", {"grace": 1}, ["'grace'", "min_epochs, reduction_factor, max_epochs"]),
        ("median", {"warmup": 1}, ["'warmup'", "did you mean 'warmup_epochs'"]),
    ],
)
def test_bad_options_are_refused_with_a_message(name, options, words):
    with pytest.raises(UserInputError) as info:
        make_scheduler(name, **options)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_unknown_scheduler_lists_the_known_ones():
    with pytest.raises(
        UnknownNameError, match="known schedulers: asha, auto, hyperband, median, none, pbt"
    ):
        make_scheduler("ashaa")
    with pytest.raises(UnknownNameError, match="did you mean 'asha'"):
        make_scheduler("ashaa")


def test_make_scheduler_from_a_yaml_mapping_round_trips():
    mapping = {"name": "asha", "min_epochs": 1, "reduction_factor": 3, "max_epochs": 20}
    s = make_scheduler(**mapping)
    assert isinstance(s, ASHAScheduler) and s.rungs == (1, 3, 9)
    for name in scheduler_names():
        built = make_scheduler(name)
        assert make_scheduler(built.name, **built.options()) == built
        assert repr(built).startswith(type(built).__name__ + "(")


def test_learning_curve_values():
    c = LearningCurve.of(4, {2: 0.5, 0: 0.7})
    assert c.points == ((0, 0.7), (2, 0.5))
    assert (c.last_epoch, c.last, c.at(1), c.upto(1)) == (2, 0.5, None, [0.7])
    assert LearningCurve.of(0, []).last_epoch is None
    with pytest.raises(UserInputError, match="increasing"):
        LearningCurve(0, ((1, 0.1), (1, 0.2)))


def test_the_core_imports_no_framework():
    code = "import sys, hpo_lightning.schedulers; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- issue 17: defaults that do not prune on noise, auto, the reporting rule, Hyperband cost ---
@pytest.mark.parametrize(
    ("max_epochs", "eta", "rungs"),
    [
        (30, 3, (4, 12)),
        (100, 3, (12, 36)),
        (10, 3, (2, 6)),
        (52, 3, (6, 18)),
        (5, 3, (1, 3)),
        (30, 2, (8, 16)),
        (1, 3, ()),
    ],
)
def test_asha_default_first_rung_is_a_grace_period(max_epochs, eta, rungs):
    s = ASHAScheduler(reduction_factor=eta, max_epochs=max_epochs)
    assert s.rungs == rungs
    assert s.min_peers == eta  # the default first rung comes with a peer minimum ...
    assert s.noise_margin == 5.0  # ... and a noise margin
    textbook = ASHAScheduler(min_epochs=1, max_epochs=max_epochs)
    assert (textbook.min_peers, textbook.noise_margin) == (0, 0.0)


def test_asha_default_stops_no_one_before_eta_peers_reported_at_the_rung():
    s = ASHAScheduler(max_epochs=30)  # rungs after 4 and 12 epochs, min_peers 3
    worse = [1.0] * 4
    better = [LearningCurve.of(i, [0.1] * 4) for i in range(3)]
    assert stop_epoch(s, [2.0] * 4, [[0.1] * 4] * 2) is None  # two peers: too few to judge
    assert s.decide(LearningCurve.of(9, worse), better, mode="min") is Decision.STOP
    # the first epochs, however bad, are never judged
    assert stop_epoch(s, [9.0, 9.0, 9.0], [[0.1] * 30] * 10) is None


def test_asha_noise_margin_keeps_a_trial_behind_by_less_than_the_jitter():
    # rung after 4 epochs; the peers' curves move by 0.02 an epoch (the jitter at the rung)
    peers = [
        LearningCurve.of(i, [v + 0.02] * 3 + [v])
        for i, v in enumerate([0.10, 0.20, 0.30, 0.40, 0.50])
    ]
    s = ASHAScheduler(max_epochs=30)  # keeps 2 of 6: the cutoff is 0.20
    assert s.decide(LearningCurve.of(9, [0.5] * 3 + [0.29]), peers, mode="min") is Decision.CONTINUE
    assert s.decide(LearningCurve.of(9, [0.5] * 3 + [0.31]), peers, mode="min") is Decision.STOP
    strict = ASHAScheduler(max_epochs=30, noise_margin=0)
    assert strict.decide(LearningCurve.of(9, [0.5] * 3 + [0.21]), peers, mode="min") is (
        Decision.STOP
    )
    flipped = [LearningCurve(c.trial, tuple((e, -v) for e, v in c.points)) for c in peers]
    curve = LearningCurve.of(9, [-0.5] * 3 + [-0.29])
    assert s.decide(curve, flipped, mode="max") is Decision.CONTINUE
    with pytest.raises(UserInputError, match="noise_margin"):
        ASHAScheduler(noise_margin=-1)


def test_hyperband_default_brackets_start_at_the_grace_period():
    s = HyperbandScheduler(max_epochs=30)
    assert [b.rungs for b in s.brackets] == [(4, 12), (12,), ()]
    assert s.min_peers == 3


class CountingPeers(Sequence):
    """A list of curves that counts how often it is iterated."""

    def __init__(self, curves):
        self.curves, self.passes = list(curves), 0

    def __iter__(self):
        self.passes += 1
        return iter(self.curves)

    def __getitem__(self, i):
        return self.curves[i]

    def __len__(self):
        return len(self.curves)


@pytest.mark.parametrize("n_trials", [20, 2000])
def test_hyperband_decision_looks_at_other_trials_only_at_its_rungs(n_trials):
    """Issue 17: the per-epoch check cost ~130 ms at 2,000 trials (a generator per peer per
    epoch); now an epoch between rungs reads no other trial, a rung epoch reads them once."""
    s = HyperbandScheduler(max_epochs=52, seed=3)
    peers = CountingPeers(LearningCurve.of(t, [0.5] * 52) for t in range(1, n_trials + 1))
    rungs = s.brackets[s.bracket_of(0)].rungs
    for epoch in range(52):
        s.decide(LearningCurve.of(0, [0.4] * (epoch + 1)), peers, mode="min")
    assert peers.passes == len(rungs)


def test_scheduler_auto_picks_from_max_epochs_and_says_why():
    assert AutoScheduler().chosen == "median"  # unknown budget
    long = make_scheduler("auto", max_epochs=30)
    assert isinstance(long, AutoScheduler) and long.chosen == "median"
    assert "30 epochs" in long.reason
    short = make_scheduler("auto", max_epochs=3)
    assert short.chosen == "none" and "fewer than 4" in short.reason
    assert stop_epoch(short, [9.0, 9.0, 9.0], MEDIAN_PEERS) is None
    # it decides as the scheduler it chose
    for curve in ([0.9, 0.8, 0.7], [0.1, 0.1, 0.1]):
        assert stop_epoch(long, curve, MEDIAN_PEERS) == stop_epoch(
            long.scheduler, curve, MEDIAN_PEERS
        )
    with pytest.raises(UserInputError, match="max_epochs"):
        make_scheduler("auto", max_epochs=0)


def test_scheduler_auto_in_a_sweep_file(tmp_path, monkeypatch):
    from hpo_lightning.sweep._config import load_sweep_file
    from hpo_lightning.sweep._worker import make_sweep_scheduler

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "name: s\nobjective: sweep_objectives:quadratic\nmonitor: loss\nmode: min\n"
        "space:\n  x: [0.1, 0.2]\nscheduler: auto\n"
    )
    cfg = load_sweep_file(path)
    assert dict(cfg.scheduler) == {"name": "auto"}
    assert make_sweep_scheduler(cfg).chosen == "median"


@pytest.mark.parametrize("mode", ["min", "max"])
def test_reported_value_rule(mode):
    values = [0.5, 0.2, 0.4] if mode == "min" else [0.5, 0.8, 0.6]
    curve = LearningCurve.of(0, values)
    # a trial trained in full counts by its best epoch, a stopped one by its last value
    assert reported_value(curve, TrialState.COMPLETE, mode=mode) == values[1]
    assert reported_value(curve, TrialState.PRUNED, mode=mode) == values[2]
    nan_last = LearningCurve.of(0, [values[0], math.nan])
    assert math.isnan(reported_value(nan_last, TrialState.PRUNED, mode=mode))
    assert reported_value(nan_last, TrialState.COMPLETE, mode=mode) == values[0]
    assert math.isnan(reported_value(LearningCurve.of(0, []), TrialState.COMPLETE, mode=mode))


def test_learning_curve_mean_upto_skips_nan():
    c = LearningCurve(0, ((0, 1.0), (2, math.nan), (3, 3.0)))
    assert (c.mean_upto(0), c.mean_upto(2), c.mean_upto(5)) == (1.0, 1.0, 2.0)
    assert LearningCurve(0, ((1, math.nan),)).mean_upto(4) is None
    assert c.mean_upto(-1) is None


# --- expected cost of a trial (what `auto` counts a sweep's budget in) -----------------------
@pytest.mark.parametrize(
    ("scheduler", "cost"),
    [
        # rungs 1, 3, 9 of 27: 2/3 stop after 1 epoch, 2/9 after 3, 2/27 after 9, 1/27 go on
        (ASHAScheduler(min_epochs=1, reduction_factor=3, max_epochs=27), 3 / 27),
        (ASHAScheduler(max_epochs=30), (2 / 3 * 4 + 2 / 9 * 12 + 1 / 9 * 30) / 30),  # 4, 12
        (ASHAScheduler(min_epochs=5, max_epochs=5), 1.0),  # no rung below max_epochs
        # brackets of 3, 7, 15 and 27 epochs per trial, weighted 27, 12, 6, 4 (of 49)
        (
            HyperbandScheduler(min_epochs=1, reduction_factor=3, max_epochs=27),
            (27 * 3 + 12 * 7 + 6 * 15 + 4 * 27) / (49 * 27),
        ),
        (NoScheduler(), 1.0),
        (AutoScheduler(max_epochs=2), 1.0),  # no stopping
        (MedianStoppingScheduler(), None),  # stops wherever a trial falls behind: unknown
        (AutoScheduler(max_epochs=30), None),  # the median rule
        (make_scheduler("pbt"), 1.0),  # every member trains in full
    ],
)
def test_expected_cost_of_a_trial(scheduler: Scheduler, cost: float | None):
    assert scheduler.expected_cost() == (None if cost is None else pytest.approx(cost))
