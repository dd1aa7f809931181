"""Sweeps at scale: per-trial driver time at trials ~100, ~1,000 and ~10,000, CLI read times,
and the memory of a worker running a plain-Python objective.

A serial in-process sweep (``run_sweep``, random tuner, quiet progress) of a no-op objective;
the objective stamps the clock, so the time of trial k is the gap between two calls (claim,
record, the next claim): the median over the ``--window`` trials before k. The same on
PostgreSQL (a throw-away schema on 127.0.0.1:5432, trust auth, dropped afterwards) as a user
runs it -- nothing vacuums the table during the sweep -- then with session settings that
isolate the store's own cost (``_PG_VARIANTS``: no wait for the WAL flush of each commit, and
generic plans too), and for Optuna (RDB storage on SQLite, random sampler, one float). Then
``status``, ``best`` and ``export`` of the SQLite and the PostgreSQL sweep (each command's wall
and CPU time, in a process that ran it once before, so without imports), and the peak RSS of a
process running a 20-trial sweep of a plain-Python objective, and of the same process after
``import torch, lightning``.

Every measurement runs in a subprocess. ``--rev REV`` measures the hpo_lightning of a git
revision (exported to a temporary directory) alongside the working tree, for before/after.

Run::

    nice -n 10 python benchmarks/bench_scale.py                  # 10,000 trials, ~5 min
    nice -n 10 python benchmarks/bench_scale.py --trials 2000    # quick
    nice -n 10 python benchmarks/bench_scale.py --rev main --skip optuna  # before/after

Goal: the 10,000th trial costs <= 2x the 100th (SQLite and PostgreSQL); status/best/export of
a 10k-trial sweep well under a second.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"

_HPO = textwrap.dedent(
    """
    import json, statistics, sys, time
    import hpo_lightning as hl
    n, window, store = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    # PostgreSQL only: VACUUM the trials table every `every` trials from a second connection
    # (what autovacuum does in a sweep that lasts longer than its nap between runs)
    every, admin = (int(sys.argv[4]), sys.argv[5]) if len(sys.argv) > 5 else (0, None)
    if every:
        import psycopg
        vacuum = psycopg.connect(admin, autocommit=True)
        schema = store.rsplit("search_path%3D", 1)[1].split("%20", 1)[0]
    stamps = []
    def objective(params, callback):
        stamps.append(time.perf_counter())
        if every and len(stamps) % every == 0:
            vacuum.execute(f'VACUUM "{schema}".hpo_trials')
        return 0.0
    hl.run_sweep(objective, name="scale", space={"x": hl.Float(0.0, 1.0)}, monitor="loss",
                 n_trials=n, tuner="random", seed=0, storage=store, progress="quiet")
    print(json.dumps(stamps))
    """
)

_OPTUNA = textwrap.dedent(
    """
    import json, sys, time
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n, url = int(sys.argv[1]), sys.argv[3]
    stamps = []
    def objective(trial):
        stamps.append(time.perf_counter())
        return trial.suggest_float("x", 0.0, 1.0) * 0.0
    study = optuna.create_study(storage=url, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=n)
    print(json.dumps(stamps))
    """
)

_CLI = textwrap.dedent(
    """
    import contextlib, io, json, sys, time
    from hpo_lightning.cli import main
    store, out = sys.argv[1], sys.argv[2]
    times = {}
    for cmd in (["status"], ["best"], ["export", "--format", "csv", "-o", out, "--force"]):
        with contextlib.redirect_stdout(io.StringIO()):  # imports (rich, ...) out of the clock
            main([cmd[0], "scale", "--storage", store, *cmd[1:]])
        t0, c0 = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            rc = main([cmd[0], "scale", "--storage", store, *cmd[1:]])
        times[cmd[0]] = (time.perf_counter() - t0, time.process_time() - c0, rc)
    print(json.dumps(times))
    """
)

_RSS = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    import hpo_lightning as hl
    def objective(params, callback):
        return (params["x"] - 0.5) ** 2
    hl.run_sweep(objective, name="rss", space={"x": hl.Float(0.0, 1.0)}, monitor="loss",
                 n_trials=20, tuner="random", seed=0, storage=sys.argv[1], progress="quiet")
    wall = time.perf_counter() - t0
    heavy = sorted(m for m in ("torch", "lightning", "pytorch_lightning") if m in sys.modules)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import torch, lightning  # noqa: F401  (what a Lightning objective's worker holds)
    full = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rss_mb": rss, "wall_s": wall, "imported": heavy, "with_torch_mb": full}))
    """
)


# PostgreSQL: a tiny committed write every 20 ms, beside the sweep -- how long the disk's WAL
# flush makes a commit wait, over time (a trial of the sweep commits twice)
_PROBE = textwrap.dedent(
    """
    import sys, time
    import psycopg
    conn = psycopg.connect(sys.argv[1], autocommit=True)
    conn.execute("CREATE TABLE commit_probe (x int)")
    while True:
        t = time.perf_counter()
        conn.execute("INSERT INTO commit_probe VALUES (1)")
        print(t, time.perf_counter() - t, flush=True)
        time.sleep(0.02)
    """
)


def _run(script: str, *args: str, src: Path) -> Any:
    env = dict(os.environ, PYTHONPATH=str(src))
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"a measurement failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def per_trial_ms(stamps: list[float], points: list[int], window: int) -> dict[int, float]:
    """Median gap (ms) between consecutive objective calls over the window ending at each point."""
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]
    out = {}
    for p in points:
        chunk = sorted(gaps[max(0, p - 1 - window) : p - 1])
        if chunk:
            out[p] = chunk[len(chunk) // 2]
    return out


@contextmanager
def _pg_store(admin_url: str, *options: str) -> Iterator[str | None]:
    """URL of a throw-away schema on the server (with session ``options``, e.g.
    ``synchronous_commit=off``), dropped afterwards; None (said) when there is no server."""
    try:
        import psycopg

        name = f"hpo_scale_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
    except Exception as exc:  # no server: say so and go on with SQLite
        print(f"PostgreSQL skipped: {str(exc).splitlines()[0]}")
        yield None
        return
    sep = "&" if "?" in admin_url else "?"
    opts = "%20".join(f"-c{o.replace('=', '%3D')}" for o in (f"search_path={name}", *options))
    try:
        yield f"{admin_url}{sep}options={opts}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@contextmanager
def _commit_probe(url: str, work: Path) -> Iterator[list[tuple[float, float]]]:
    """(time.perf_counter(), seconds) of the _PROBE's commits while the block runs (the clock
    is the system's monotonic one, shared with the sweep's process)."""
    samples: list[tuple[float, float]] = []
    out = work / f"probe_{uuid.uuid4().hex[:8]}.txt"
    with out.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-c", _PROBE, url], stdout=sink)
        try:
            yield samples
        finally:
            proc.terminate()
            proc.wait()
    samples.extend(
        (float(a), float(b)) for a, b in (ln.split() for ln in out.read_text().split("\n") if ln)
    )
    out.unlink()


def _export(rev: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "hpo_lightning"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--window", type=int, default=200, help="trials per median")
    ap.add_argument("--pg", default=os.environ.get("HPO_TEST_PG_URL", DEFAULT_PG))
    ap.add_argument("--rev", help="also measure this git revision's hpo_lightning (before/after)")
    ap.add_argument(
        "--skip", default="", help="comma list of: tree, pg, nosync, generic, optuna, cli, rss"
    )
    ap.add_argument(
        "--pg-vacuum-every",
        type=int,
        default=0,
        help="also run the PostgreSQL sweep with a VACUUM of the trials table every N trials "
        "(default 0: not); the store's claims no longer depend on it",
    )
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    points = sorted({p for p in (100, 1000, 10_000, args.trials) if p <= args.trials})
    work = Path(tempfile.mkdtemp(prefix="hpo_scale_"))
    sources = {} if "tree" in skip else {"this tree": ROOT}
    if args.rev:
        sources[args.rev] = _export(args.rev, work / "rev")

    print(f"per-trial driver time, ms (median of the {args.window} trials before each point)")
    print(f"{'':46s}" + "".join(f"{p:>9d}" for p in points) + f"{'last/100':>10s}{'total s':>9s}")
    for label, src in sources.items():
        db = work / f"{uuid.uuid4().hex[:8]}.db"
        stamps = _run(_HPO, str(args.trials), str(args.window), str(db), src=src)
        _row(f"hpo_lightning sqlite ({label})", stamps, points, args.window)
        if "cli" not in skip:
            _cli_line(
                label, _run(_CLI, str(db), str(work / "export.csv"), src=src), str(args.trials)
            )
        if "pg" not in skip:
            _pg_rows(args, label, src, skip=skip, points=points, work=work)
        if "rss" not in skip:
            rss = _run(_RSS, str(work / "rss.db"), src=src)
            (work / "rss.db").unlink()
            print(
                f"  rss ({label}): a 20-trial plain-Python sweep peaks at {rss['rss_mb']:.0f} MB "
                f"in {rss['wall_s']:.1f} s, heavy modules imported: "
                f"{', '.join(rss['imported']) or 'none'}; the same process after importing "
                f"torch+lightning: {rss['with_torch_mb']:.0f} MB",
                flush=True,
            )
    if "optuna" not in skip:
        url = f"sqlite:///{work / 'optuna.db'}"
        stamps = _run(_OPTUNA, str(args.trials), str(args.window), url, src=ROOT)
        _row("optuna sqlite (RDB)", stamps, points, args.window)


# The PostgreSQL sweep again with session settings that isolate the store's own cost: without
# waiting for the WAL flush of each commit (the disk's fsync latency, which sets the first
# row's floor and varies with the machine), and with the generic plans that PostgreSQL may
# keep for a prepared statement from the sweep's first trials (the worst case a user can get).
_PG_VARIANTS = (
    ("nosync", "synchronous_commit=off", ("synchronous_commit=off",)),
    (
        "generic",
        "generic plans, no flush wait",
        ("synchronous_commit=off", "plan_cache_mode=force_generic_plan"),
    ),
)


def _pg_rows(
    args: argparse.Namespace,
    label: str,
    src: Path,
    *,
    skip: set[str],
    points: list[int],
    work: Path,
) -> None:
    """The PostgreSQL sweep as users run it (and the CLI on it), then its _PG_VARIANTS, and
    optionally with the table vacuumed every ``--pg-vacuum-every`` trials."""
    n, w = str(args.trials), str(args.window)
    with _pg_store(args.pg) as url:
        if url is None:
            return
        with _commit_probe(url, work) as commits:
            stamps = _run(_HPO, n, w, url, src=src)
        _row(f"hpo_lightning pg ({label})", stamps, points, args.window)
        _commit_row(commits, stamps, points, args.window)
        if "cli" not in skip:
            _cli_line(f"pg, {label}", _run(_CLI, url, str(work / "export.csv"), src=src), n)
    for token, name, options in _PG_VARIANTS:
        if token not in skip:
            with _pg_store(args.pg, *options) as url:
                stamps = _run(_HPO, n, w, str(url), src=src)
                _row(f"  pg, {name} ({label})", stamps, points, args.window)
    if args.pg_vacuum_every:
        with _pg_store(args.pg) as url:
            stamps = _run(_HPO, n, w, str(url), str(args.pg_vacuum_every), args.pg, src=src)
            _row(
                f"  pg, VACUUM every {args.pg_vacuum_every} ({label})", stamps, points, args.window
            )


def _cli_line(label: str, cli: dict[str, Any], n_trials: str) -> None:
    shown = ", ".join(
        f"{k} {t * 1000:.0f} ms ({cpu * 1000:.0f} ms CPU, exit {rc})"
        for k, (t, cpu, rc) in cli.items()
    )
    print(f"  cli ({label}) on the {n_trials}-trial sweep: {shown}", flush=True)


def _commit_row(
    commits: list[tuple[float, float]], stamps: list[float], points: list[int], window: int
) -> None:
    """The median time of the probe's commits during each point's window of trials."""
    cells = ""
    for p in points:
        lo, hi = stamps[max(0, p - 1 - window)], stamps[p - 1]
        inside = sorted(d for t, d in commits if lo <= t <= hi)
        cells += f"{inside[len(inside) // 2] * 1000 if inside else float('nan'):9.2f}"
    print(f"{'    one commit meanwhile (WAL flush wait)':46s}{cells}", flush=True)


def _row(name: str, stamps: list[float], points: list[int], window: int) -> None:
    ms = per_trial_ms(stamps, points, window)
    ratio = ms[points[-1]] / ms[points[0]] if points[0] in ms else float("nan")
    cells = "".join(f"{ms.get(p, float('nan')):9.2f}" for p in points)
    total = stamps[-1] - stamps[0] if stamps else float("nan")
    print(f"{name:46s}{cells}{ratio:10.2f}{total:9.1f}", flush=True)


if __name__ == "__main__":
    main()
