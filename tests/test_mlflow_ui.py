"""The MLflow UI, checked in a real browser: a sweep's parent run and its nested trial runs.

Starts ``mlflow server`` (SQLite backend, 127.0.0.1, a free port), runs a small sweep into it
through MLflowTracker, opens the experiment in headless Chromium (Debian's ``chromium`` and
``chromedriver``, driven by Selenium), expands the parent run and checks the trial runs are
listed under it. The screenshot goes to the test's temporary directory (``HPO_UI_SCREENSHOT=PATH``
copies it there); the README's picture, of the digits sweep itself, is made by
``python docs/mlflow_screenshot.py``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hpo_lightning import Trial, TrialState
from hpo_lightning.events import EpochEnd, EpochStart, TrainingFinish

mlflow = pytest.importorskip("mlflow")
webdriver = pytest.importorskip("selenium.webdriver")
from _mlflow_server import MlflowServer  # noqa: E402
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from hpo_lightning.tracking import MLflowTracker  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
        reason="needs Debian's chromium and chromedriver (apt-get install chromium "
        "chromium-driver)",
    ),
    pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*"),
]
EXPANDER = '[col-id*="Run Name"] button[data-component-id*="runnamecellrenderer"]'


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MlflowServer]:
    srv = MlflowServer(tmp_path)
    try:
        yield srv.start()
    finally:
        srv.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,800",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def small_sweep(uri: str) -> str:
    """A 3-trial sweep (complete, pruned, failed) into MLflow; returns the experiment id."""
    definition = {
        "name": "ui-sweep",
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
        "tuner": {"name": "tpe", "options": {}},
        "scheduler": {"name": "median"},
        "monitor": "val_loss",
        "mode": "min",
        "n_trials": 3,
        "seed": 0,
    }
    tracker = MLflowTracker(uri, "ui-experiment")
    tracker.sweep_started("ui-sweep", definition)
    states = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED]
    for n, state in enumerate(states):
        trial = Trial("ui-sweep", n, {"lr": 10.0 ** -(n + 1), "hidden": 32 * (n + 1)})
        for epoch in range(3 - n):
            loss = 1.0 / (epoch + 1) + 0.2 * n
            tracker.on_event(EpochStart(trial, epoch=epoch))
            tracker.on_event(
                EpochEnd(trial, epoch=epoch, metrics={"val_loss": loss, "train_loss": loss + 0.1})
            )
        best = float("nan") if state is TrialState.FAILED else 1.0 / (3 - n) + 0.2 * n
        tracker.on_event(TrainingFinish(trial, best_metric=best, state=state, epochs=3 - n))
    tracker.sweep_finished("ui-sweep")
    tracker.close()
    assert tracker.dropped == 0
    return str(mlflow.MlflowClient(uri).get_experiment_by_name("ui-experiment").experiment_id)


def _close_assistant(driver: Any) -> None:
    """Close MLflow 3's assistant side panel, if shown, so the runs table is wide."""
    for button in driver.find_elements(By.CSS_SELECTOR, "button"):
        try:
            if button.text.strip() == "Close" or button.get_attribute("aria-label") == "Close":
                button.click()
                return
        except WebDriverException:
            continue


def test_the_ui_shows_the_sweep_run_with_its_nested_trial_runs(
    server: MlflowServer, browser: Any, tmp_path: Path
) -> None:
    experiment_id = small_sweep(server.uri)
    browser.get(f"{server.uri}/#/experiments/{experiment_id}/runs")
    wait = WebDriverWait(browser, 60)
    table = (By.CSS_SELECTOR, "[role=grid]")
    try:
        wait.until(lambda d: "ui-sweep" in d.find_element(*table).text)
        _close_assistant(browser)
        # nested runs are collapsed under their parent; expand it
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, EXPANDER))[0].click()
        wait.until(lambda d: "trial-2" in d.find_element(*table).text)
    except TimeoutException:
        browser.save_screenshot(str(tmp_path / "mlflow_ui_timeout.png"))
        raise AssertionError(
            f"runs table never showed the sweep; page text: {browser.page_source[:1500]}"
        ) from None
    time.sleep(1.0)  # let the row animation settle before the screenshot
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "[role=row]")]
    names = [line for r in rows for line in r.splitlines()]
    assert names.count("ui-sweep") == 1
    assert all(names.count(f"trial-{n}") == 1 for n in range(3)), rows
    text = browser.find_element(*table).text
    assert text.index("ui-sweep") < text.index("trial-0")  # children listed under the parent
    shot = tmp_path / "mlflow_ui.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:4] == b"\x89PNG"
    target = os.environ.get("HPO_UI_SCREENSHOT")
    if target:
        shutil.copy(shot, target)
