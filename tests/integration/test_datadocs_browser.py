"""The Data Docs in a real browser with the network off: styled, scripted, nothing fetched.

Chromium comes from Debian (``apt-get install -y chromium`` when missing; the test is
skipped, saying why, only when that install fails). It runs headless inside a new
network namespace (``unshare -n``: no interface is up, so the network really is off),
or, where the kernel refuses one, with every host name unresolvable.

A probe script appended to a copy of a validation page reads what only loaded assets
can produce: Bootstrap's flex navbar and spacing utilities, jQuery and its plugins, Vega,
the Font Awesome webfont. The same probe on a copy of the site without its assets must
report an unstyled page, so the check can fail. The screenshot is kept in
``tests/artifacts/``.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from browser_support import FLAGS, chromium_or_skip
from conftest import REPO
from pipelines.output import KEPT_SCHEMA, read_table
from validation.config import ValidateConfig
from validation.gate import validate

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "tests" / "artifacts"
PROBE = """
<script>
window.addEventListener("load", async () => {
  await document.fonts.ready;
  const style = (selector, property) => {
    const element = document.querySelector(selector);
    return element ? getComputedStyle(element).getPropertyValue(property) : null;
  };
  const $ = window.jQuery;
  const probe = {
    navbar_display: style("nav.navbar", "display"),
    container_padding_left: style(".container-fluid.pl-5", "padding-left"),
    jquery: typeof $,
    bootstrap_modal: typeof ($ && $.fn.modal),
    bootstrap_table: typeof ($ && $.fn.bootstrapTable),
    vega_embed: typeof window.vegaEmbed,
    font_awesome: Array.from(document.fonts).some(
      (face) => face.family.replace(/"/g, "") === "Font Awesome 6 Free" && face.status === "loaded"),
  };
  const out = document.createElement("pre");
  out.id = "dapt-probe";
  out.textContent = JSON.stringify(probe);
  document.body.appendChild(out);
});
</script>
"""
STYLED = {
    "navbar_display": "flex", "container_padding_left": "48px", "jquery": "function", "bootstrap_modal": "function",
    "bootstrap_table": "function", "vega_embed": "function", "font_awesome": True,
}


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip()


def _offline(command: list[str]) -> list[str]:
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode == 0:
        return ["unshare", "-n", *command]
    return [*command, "--host-resolver-rules=MAP * ~NOTFOUND"]


def _browse(chromium: str, page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [chromium, *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()]
    return subprocess.run(_offline(command), capture_output=True, text=True, timeout=120)


def _probe(chromium: str, page: Path, tmp_path: Path) -> dict:
    probe_page = page.with_name("dapt-probe.htm")  # not *.html: the site's pages stay as built
    probe_page.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    run = _browse(chromium, probe_page, tmp_path, "--virtual-time-budget=10000", "--dump-dom")
    found = re.search(r'<pre id="dapt-probe">(.*?)</pre>', run.stdout, re.DOTALL)
    assert found, f"no probe output; chromium said: {run.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def site(clean_subset_for_validation, tmp_path_factory) -> Path:
    """Data Docs of an output with one leftover e-mail address, so a page shows a failure."""
    out = tmp_path_factory.mktemp("docs") / "clean"
    shutil.copytree(clean_subset_for_validation, out, ignore=shutil.ignore_patterns("validation"))
    kept = read_table(str(out), "kept").to_pandas()
    row = kept.index[kept["corpus"] == "medical"][7]
    kept.loc[row, "text"] += "\nQuestions: write to jane.doe@example.org."
    for shard in (out / "kept").glob("*.parquet"):
        shard.unlink()
    table = pa.Table.from_pandas(kept, schema=KEPT_SCHEMA, preserve_index=False)
    pq.write_table(table, out / "kept" / "part-00000-of-00001.parquet", compression="zstd")
    report = validate(str(out), ValidateConfig(), workers=0)
    assert {r.name for r in report.blocking_failures} == {"kept.medical/no_leftover_pii"}
    return Path(report.data_docs).parent


def _medical_page(site: Path) -> Path:
    (page,) = (site / "validations" / "kept" / "medical").rglob("*.html")
    return page


def test_pages_render_styled_offline(chromium, site, tmp_path):
    assert _probe(chromium, _medical_page(site), tmp_path) == STYLED
    assert _probe(chromium, site / "index.html", tmp_path)["navbar_display"] == "flex"


def test_the_probe_fails_without_the_assets(chromium, site, tmp_path):
    bare = tmp_path / "site"
    shutil.copytree(site, bare)
    shutil.rmtree(bare / "static" / "vendor")
    probe = _probe(chromium, _medical_page(bare), tmp_path)
    assert probe["navbar_display"] == "block" and probe["container_padding_left"] == "0px"
    assert probe["jquery"] == "undefined" and probe["font_awesome"] is False


def _page_requests(net_log: Path) -> set[str]:
    """Network URLs the page asked for: Chromium's own background requests (component
    updates, network time) carry no initiator origin, the page's carry its own."""
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls: dict[int, str] = {}
    page = set()
    for event in log["events"]:
        params = event.get("params", {})
        if "url" in params:
            urls.setdefault(event["source"]["id"], params["url"])
        if event["type"] == start_job and params.get("initiator", "not an origin") != "not an origin":
            page.add(urls.get(event["source"]["id"], params.get("url", "")))
    return {url for url in page if re.match(r"(https?|wss?)://", url)}


def test_nothing_is_fetched_and_a_screenshot_is_kept(chromium, site, tmp_path):
    page = _medical_page(site)
    screenshot = tmp_path / "validation-datadocs.png"
    run = _browse(chromium, page, tmp_path, "--window-size=1280,1600", f"--screenshot={screenshot}",
                  f"--log-net-log={tmp_path / 'net-log.json'}", "--hide-scrollbars")
    assert screenshot.exists() and screenshot.stat().st_size > 50_000, run.stderr[-2000:]
    assert _page_requests(tmp_path / "net-log.json") == set()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / screenshot.name)

    # The same page with one CDN script left in: the log shows the attempt.
    leaky = page.with_name("dapt-leaky.htm")
    leaky.write_text(page.read_text().replace("</head>", '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script></head>'))
    _browse(chromium, leaky, tmp_path, f"--log-net-log={tmp_path / 'leaky-log.json'}", "--virtual-time-budget=3000",
            "--dump-dom")
    assert _page_requests(tmp_path / "leaky-log.json") == {"https://cdn.jsdelivr.net/npm/vega@5"}
