"""``lifelong_imports``: collection paused for the import, frozen only before Beam ran."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

_PROBE = """
import gc, json, sys
{before}
from pipelines.lifelong_imports import lifelong_imports
frozen_before = gc.get_freeze_count()
with lifelong_imports():
    paused = not gc.isenabled()
    import email.mime.multipart, xml.dom.minidom
print(json.dumps({{"paused": paused, "enabled_after": gc.isenabled(),
                  "frozen": gc.get_freeze_count() - frozen_before}}))
"""


@pytest.mark.parametrize("beam_loaded", [False, True])
def test_collection_is_paused_then_restored_and_frozen_only_before_beam(beam_loaded):
    before = "import apache_beam" if beam_loaded else ""
    run = subprocess.run([sys.executable, "-c", _PROBE.format(before=before)],
                         capture_output=True, text=True, cwd=REPO, check=True)
    seen = json.loads(run.stdout.splitlines()[-1])
    assert seen["paused"] and seen["enabled_after"]
    if beam_loaded:
        assert seen["frozen"] == 0
    else:
        assert seen["frozen"] > 1000


def test_a_caller_that_disabled_collection_keeps_it_disabled():
    probe = ("import gc; gc.disable()\nfrom pipelines.lifelong_imports import lifelong_imports\n"
             "with lifelong_imports(): pass\nprint(gc.isenabled(), gc.get_freeze_count())")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert run.stdout.split() == ["False", "0"]
