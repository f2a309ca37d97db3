"""Data Docs page views whose Jinja templates are compiled once per machine, not per run.

GE's views build a Jinja environment per site section and compile each template on first
use in it: about 50 compilations, two thirds of the CPU time of building the samples'
Data Docs, repeated by every run for templates that only change with GE itself. These
views are GE's own with Jinja's :class:`~jinja2.FileSystemBytecodeCache` added: the
per-user folder Jinja makes in the temporary directory (mode 0700, refused if another
user owns it). Entries are keyed by template name and file and checked against the
template source's checksum, so an upgraded or edited template is compiled afresh; the
rendered HTML is the same. Where no such folder can be made, templates are compiled as
before.

GE instantiates these from the site config (:func:`validation.datadocs.site_config`),
after :mod:`validation.ge` has imported it.
"""

from __future__ import annotations

import functools

from jinja2 import BytecodeCache, FileSystemBytecodeCache

from validation.ge import DefaultJinjaIndexPageView, DefaultJinjaPageView


@functools.cache
def _bytecode_cache() -> BytecodeCache | None:
    try:
        return FileSystemBytecodeCache()
    except (OSError, RuntimeError):  # no temporary directory this user may own
        return None


class _CachedTemplates:
    """Gives the Jinja environment that GE's view ``__init__`` builds the bytecode cache."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _bytecode_cache()


class CachedPageView(_CachedTemplates, DefaultJinjaPageView):
    """GE's page view (suites, validation results)."""


class CachedIndexPageView(_CachedTemplates, DefaultJinjaIndexPageView):
    """GE's index page view."""
