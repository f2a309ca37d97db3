"""Importing the heavy libraries (Beam, Great Expectations) without the cyclic collector.

Such an import creates hundreds of thousands of objects (classes, pydantic models,
compiled protos) that live as long as the process. While they are being made, every
filled generation makes the collector trace them, and the process's later full
collections trace them again, finding nothing to free: ~0.2 CPU-s per Beam import, ~0.4
per Great Expectations import on the CI machine. :func:`lifelong_imports` pauses
collection for the import (reference counting still frees everything outside a cycle)
and then freezes what exists (:func:`gc.freeze`), so later collections skip it.

Freezing would also keep any cyclic garbage that exists at that moment for good, so it
is done only while no Beam job can have left some: before the process first imports
Beam. Later (``dapt run`` validates in the process that cleaned) collection is only
paused.
"""

from __future__ import annotations

import contextlib
import gc
import sys


@contextlib.contextmanager
def lifelong_imports():
    if not gc.isenabled():  # someone else manages collection
        yield
        return
    freeze = "apache_beam" not in sys.modules
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        gc.enable()
