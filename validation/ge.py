"""Great Expectations, imported here (and only here), without libraries it never uses for us.

``import great_expectations`` imports every expectation class it ships, and a few of
those import, at module level, libraries that only their own evaluation calls:
``scipy.stats`` (the KS-test and KL-divergence expectations) and ``altair`` (the
KL-divergence charts). Together about 0.9 s of CPU, a quarter of ``dapt validate``
on the samples, for expectations the suites here never use.

While Great Expectations is imported, those two are imported lazily
(:class:`importlib.util.LazyLoader`): the module objects exist, and their code runs at
the first attribute access, so an expectation that does use them still works, loading
them then. Anything that imported them earlier in the process keeps its copy.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import sys

_UNUSED = ("scipy.stats", "altair")


class _LazyFinder(importlib.abc.MetaPathFinder):
    def __init__(self, names: tuple[str, ...]):
        self.names = names

    def find_spec(self, name, path, target=None):
        if name not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None and spec.loader is not None:
                    spec.loader = importlib.util.LazyLoader(spec.loader)
                    return spec
        return None


@contextlib.contextmanager
def _lazily(names: tuple[str, ...]):
    finder = _LazyFinder(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


with _lazily(_UNUSED):
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.expectations.metadata_types import FailureSeverity

__all__ = ["DataContextConfig", "FailureSeverity", "InMemoryStoreBackendDefaults", "ProgressBarsConfig", "gx", "gxe"]
