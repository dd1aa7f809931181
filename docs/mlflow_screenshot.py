"""Make docs/mlflow_ui.png: the digits sweep of the README, mirrored to a real MLflow server.

Runs ``hpo-lightning sweep`` on a copy of ``examples/digits_sweep.yaml`` with an ``mlflow:``
section pointing at a local ``mlflow server`` (127.0.0.1, a free port, stopped at the end), then
opens the experiment's runs page in headless Chromium, expands the sweep's parent run, shows the
trial value and three params, and saves the screenshot. Takes 1-2 minutes on 2 cores.

Needs the [dev] extra and Debian's ``chromium`` and ``chromium-driver``.

Run:  python docs/mlflow_screenshot.py [OUT.png]     (default: docs/mlflow_ui.png)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _mlflow_server import MlflowServer  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
EXPANDER = '[col-id*="Run Name"] button[data-component-id*="runnamecellrenderer"]'
COLUMNS_OFF = ("Dataset", "Source", "Models")
COLUMNS_ON = ("trial_value", "best_value", "lr", "hidden", "optimizer")


def run_digits_sweep(work: Path, tracking_uri: str) -> str:
    """The README's digits sweep with ``mlflow:`` added; returns the experiment id."""
    import mlflow

    shutil.copy(ROOT / "examples" / "digits.py", work)
    text = (ROOT / "examples" / "digits_sweep.yaml").read_text()
    text += f"mlflow: {{tracking_uri: '{tracking_uri}', experiment: digits}}\n"
    (work / "digits_sweep.yaml").write_text(text)
    cmd = [sys.executable, "-m", "hpo_lightning", "sweep", "digits_sweep.yaml", "--quiet"]
    subprocess.run(cmd, cwd=work, check=True)
    experiment = mlflow.MlflowClient(tracking_uri).get_experiment_by_name("digits")
    return str(experiment.experiment_id)


def _toggle_column(driver: Any, label: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, "input[placeholder='Search columns']")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    box.send_keys(label)
    time.sleep(0.8)
    # the search highlights matches inside longer names (space.lr.type): take the exact one
    hits = [
        e
        for e in driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{label}']")
        if e.is_displayed() and e.find_element(By.XPATH, "..").text.strip() == label
    ]
    hits[-1].click()
    time.sleep(0.4)


def screenshot(url: str, out: Path, profile: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1500,900")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        grid = (By.CSS_SELECTOR, "[role=grid]")
        wait.until(lambda d: "digits" in d.find_element(*grid).text)
        for button in driver.find_elements(By.CSS_SELECTOR, "button"):  # the assistant panel
            if button.get_attribute("aria-label") == "Close":
                button.click()
                break
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, EXPANDER))[0].click()
        wait.until(lambda d: "trial-19" in d.find_element(*grid).text)
        buttons = driver.find_elements(By.CSS_SELECTOR, "button")
        next(b for b in buttons if b.text == "Columns").click()
        time.sleep(1.0)
        for label in (*COLUMNS_OFF, *COLUMNS_ON):
            _toggle_column(driver, label)
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        time.sleep(1.5)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "mlflow_ui.png").resolve()
    with tempfile.TemporaryDirectory(prefix="hpo-shot-") as tmp:
        work = Path(tmp)
        server = MlflowServer(work).start()
        try:
            experiment_id = run_digits_sweep(work, server.uri)
            screenshot(f"{server.uri}/#/experiments/{experiment_id}/runs", out, work / "profile")
        finally:
            server.stop()
    print(out)


if __name__ == "__main__":
    main()
