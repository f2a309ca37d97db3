"""The MLflow UI's compare view of two ``dapt run`` pipelines, in a real headless browser.

Two pipelines run to the end (a tiny training included) against a real ``mlflow server``
on 127.0.0.1: a finance subset, and the same finance subset with a medical one. Debian's
Chromium opens the UI's compare view of their two parent runs with every host but the
loopback unreachable (the UI is a single-page app the server ships with its own assets),
switches "Show diff only" on as a user would, and reads the tables back: the keys shown
as differing must be exactly those ``dapt runs compare`` finds, with the values the
tracking API returns. The screenshot is kept in ``tests/artifacts/`` (``docs/mlflow-compare.png``
is a copy of it, shown in the README).
"""

from __future__ import annotations

import json
import math
import shutil

import pytest

from browser_support import Browser, chromium_or_skip
from conftest import FINANCE, MEDICAL, REPO
from flow_support import dapt_run, parent_runs, pipeline, write_subset

pytestmark = pytest.mark.slow

DOCS = 300
ARTIFACTS = REPO / "tests" / "artifacts"
#: Every request not for the loopback goes to a closed port: the network is off for the page.
LOOPBACK_ONLY = "--proxy-server=http://127.0.0.1:9"
#: Keys that must differ between a finance run and a finance + medical run.
DIFFERING_PARAMS = {"corpora", "corpus.medical.digest", "tokenizer.sha256"}
DIFFERING_METRICS = {"kept_ratio.medical", "tokens.medical", "tokens.finance", "tokenizer.fertility",
                     "train.best_val_loss", "train.final_val_loss", "train.tokens_per_s"}

# The compare view's tables, each found by its section's "Show diff only" switch. The
# metrics table is virtualized: a grid of keys beside a grid of values, rows placed by offset.
SECTIONS = """
const section = (name) => {
  let el = document.querySelector(`[aria-label="${name} - Show diff only"]`);
  while (el && !el.querySelector('table, .ReactVirtualized__Grid')) el = el.parentElement;
  return el;
};
const paramTable = () => section('Parameters').querySelector('table');
const metricValues = () => section('Metrics').querySelectorAll('.ReactVirtualized__Grid')[1];
const frames = () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(true))));
// While a grid scrolls (and 150 ms after) it repaints cells from its cache, stale if the rows
// changed meanwhile; it marks that time with pointer-events: none.
const settled = async () => {
  await frames();
  while (Array.from(document.querySelectorAll('.ReactVirtualized__Grid__innerScrollContainer'))
         .some((grid) => grid.style.pointerEvents === 'none'))
    await new Promise((done) => setTimeout(done, 50));
  return frames();
};
const text = (el) => el.textContent.trim();
"""
READ_PAGE = """
const nameRow = Array.from(document.querySelectorAll('tr')).find(
  (tr) => tr.querySelector('th') && text(tr.querySelector('th')) === 'Run Name:');
const params = {};
for (const tr of paramTable().querySelectorAll('tr'))
  params[text(tr.querySelector('th'))] = Array.from(tr.querySelectorAll('td'), text);
const [keyGrid, valueGrid] = section('Metrics').querySelectorAll('.ReactVirtualized__Grid');
const cells = (grid) => Array.from(grid.firstElementChild.children,
  (cell) => ({top: parseFloat(cell.style.top), left: parseFloat(cell.style.left), text: text(cell)}));
const metrics = {};
for (const key of cells(keyGrid))
  metrics[key.text] = cells(valueGrid).filter((c) => c.top === key.top).sort((x, y) => x.left - y.left)
    .map((c) => c.text);
return {names: nameRow ? Array.from(nameRow.querySelectorAll('td'), text) : [], params, metrics,
        metricsEnd: valueGrid.scrollTop + valueGrid.clientHeight >= valueGrid.scrollHeight - 1};
"""
# One screen on in the metric grid (the key grid follows it).
SCROLL_METRICS = "metricValues().scrollTop += metricValues().clientHeight; return settled();"
SHOW_DIFF_ONLY = """
for (const name of ['Parameters', 'Metrics'])
  document.querySelector(`[aria-label="${name} - Show diff only"]`).click();
document.querySelector('[aria-label="Close"]')?.click();  // the assistant panel a first visit opens
"""


def _js(body: str) -> str:
    return f"(() => {{{SECTIONS}{body}}})()"


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, mlflow_server):
    """The parent runs of two pipelines, each run to the end (training and registry)."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("compare")
    finance = write_subset(root / "finance.jsonl.gz", FINANCE, 0, DOCS)
    medical = write_subset(root / "medical.jsonl.gz", MEDICAL, 0, DOCS)
    for config in (pipeline(root, "finance", {"finance": finance}),
                   pipeline(root, "finance-medical", {"finance": finance, "medical": medical})):
        run = dapt_run(config, mlflow_server.uri)
        assert run.returncode == 0, run.stderr[-3000:]
    client = MlflowClient(mlflow_server.uri)
    return [parent_runs(client, name)[0] for name in ("finance", "finance-medical")]


def _read(browser) -> dict:
    """The page's run names and tables (the metric grid scrolled through and back)."""
    page = browser.evaluate(_js(READ_PAGE))
    for _ in range(100):
        if page["metricsEnd"]:
            break
        browser.evaluate(_js(SCROLL_METRICS))
        more = browser.evaluate(_js(READ_PAGE))
        page = {**more, "metrics": {**page["metrics"], **more["metrics"]}}
    browser.evaluate(_js("paramTable().scrollTop = metricValues().scrollTop = 0; return settled();"))
    return page


def _scroll_tables_to_their_ends(browser) -> None:
    """With the wheel over each table, as a user scrolls. MLflow 3.17's metric keys follow
    the values one scroll event late (by the last wheel step), so the metric grid is
    wheeled to 1 px short of its end, then the last pixel: keys and values line up."""
    geometry = _js("""
      const [keys, values] = section('Metrics').querySelectorAll('.ReactVirtualized__Grid');
      const table = paramTable();
      const at = (el) => { const r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + 20]; };
      return {params: at(table), paramsLeft: table.scrollHeight - table.clientHeight - table.scrollTop,
              metrics: at(values), metricsLeft: values.scrollHeight - values.clientHeight - values.scrollTop,
              lag: values.scrollTop - keys.scrollTop};""")
    where = browser.evaluate(geometry)
    browser.wheel(*where["params"], where["paramsLeft"])
    browser.wheel(*where["metrics"], where["metricsLeft"] - 1)
    browser.evaluate(_js("return settled();"))
    browser.wheel(*where["metrics"], 1)
    browser.evaluate(_js("return settled();"))
    now = browser.evaluate(geometry)
    assert now["paramsLeft"] < 1 and now["metricsLeft"] < 1 and 0 <= now["lag"] <= 1, now


def _metric_shown(text: str, value: float | None) -> bool:
    """The UI rounds (0.9233 shows as 0.923) and shows an absent metric as NaN."""
    if value is None:
        return text == "NaN"
    return math.isclose(float(text), value, rel_tol=1e-3, abs_tol=5e-4)


def test_compare_view_shows_what_differs(chromium, mlflow_server, two_runs, tmp_path):
    from pipelines.runs import compare_runs

    a, b = two_runs
    ids = json.dumps([a.info.run_id, b.info.run_id], separators=(",", ":"))
    url = f"{mlflow_server.uri}/#/compare-runs?runs={ids}&experiments={json.dumps([a.info.experiment_id])}"
    with Browser(chromium, tmp_path / "profile", LOOPBACK_ONLY, width=1400, height=2300) as browser:
        browser.open(url)
        browser.wait_for("document.querySelectorAll('[aria-label$=\" - Show diff only\"]').length === 3 && "
                         "document.body.innerText.includes('Comparing 2 Runs')")
        everything = _read(browser)
        browser.evaluate(_js(SHOW_DIFF_ONLY))
        browser.wait_for(_js(f"return paramTable().querySelectorAll('tr').length < {len(everything['params'])};"))
        shown = _read(browser)
        _scroll_tables_to_their_ends(browser)
        browser.screenshot(tmp_path / "mlflow-compare.png")
        requests = browser.requests

    # the page and everything it loaded came from the server (or were inline)
    assert requests and all(u.startswith((mlflow_server.uri + "/", "data:", "blob:")) for u in requests), requests
    assert everything["names"] == shown["names"] == [a.info.run_name, b.info.run_name]

    # every param of either run, then only those that differ: the ones `dapt runs compare` names
    assert set(everything["params"]) == set(a.data.params) | set(b.data.params)
    assert set(everything["metrics"]) == set(a.data.metrics) | set(b.data.metrics)
    _, _, differences, _ = compare_runs(mlflow_server.uri, a.info.run_id, b.info.run_id)
    assert set(shown["params"]) == {d.key for d in differences if d.kind == "param"}
    assert set(shown["metrics"]) == {d.key for d in differences if d.kind == "metric"}
    assert DIFFERING_PARAMS <= set(shown["params"]) and DIFFERING_METRICS <= set(shown["metrics"])
    # the same corpus in both runs: its digest is listed, and is not a difference
    assert "corpus.finance.digest" in set(everything["params"]) - set(shown["params"])
    assert {"plan.params", "plan.tokens"} <= set(everything["params"])
    for page in (everything, shown):
        for key, values in page["params"].items():
            assert values == [a.data.params.get(key, ""), b.data.params.get(key, "")], key
        for key, values in page["metrics"].items():
            expected = [a.data.metrics.get(key), b.data.metrics.get(key)]
            assert all(map(_metric_shown, values, expected)), (key, values, expected)

    screenshot = tmp_path / "mlflow-compare.png"
    assert screenshot.stat().st_size > 50_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / screenshot.name)
