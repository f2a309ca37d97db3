"""Great Expectations, imported here (and only here), without what it never does for us.

``import great_expectations`` costs about 2.4 CPU s on the CI machine, more than the
checks it then runs on the samples. Three things in it are not needed here, and are
left out without changing what GE computes:

* **Libraries only a few expectations call.** ``scipy.stats`` (the KS-test and
  KL-divergence expectations) and ``altair`` (the KL-divergence charts) are imported
  by those expectations' modules. While GE is imported they load lazily
  (:class:`importlib.util.LazyLoader`): the module objects exist and their code runs at
  the first attribute access, so an expectation that does use them still works.
* **Integrations of GE's optional extras.** GE's ``compatibility`` layer imports
  SQLAlchemy (the ``sql``/``postgresql``/... extras) and Google Cloud auth and storage
  (``gcp``) when they are installed, and falls back to a placeholder when they are not.
  They are installed here for other reasons (MLflow's tracking store, Beam's GCP IO),
  but dapt's context is ephemeral, its stores in memory and its data a pandas frame,
  so while GE is imported they are reported absent, as in an install without those
  extras. Only when nothing in the process has imported them yet: a process that uses
  them (``dapt run`` with MLflow) keeps them, and GE sees them as usual.
* **Cyclic garbage collection during the import** (:mod:`pipelines.lifelong_imports`):
  building GE's ~370 pydantic-v1 models (each subclass deep-copies its base's fields)
  allocates millions of objects that all outlive the import.

And one thing is done faster. Each pydantic-v1 model class deep-copies the fields it
inherits: ~3,800 ``ModelField`` and as many ``FieldInfo`` objects over GE's models, which
``copy.deepcopy`` takes through the pickle protocol (reduce to a state dict, copy that,
rebuild), 0.37-0.39 s of the ~1.4 s import (measured). While GE is imported, those two
classes copy slot by slot (:func:`slot_deepcopier`): the same copy, in a third of the time.
"""

from __future__ import annotations

import contextlib
import copy
import copyreg
import importlib.abc
import importlib.util
import sys
import threading
import types
from collections.abc import Callable

from pipelines.lifelong_imports import lifelong_imports

_LAZY = ("scipy.stats", "altair")
#: Import-name prefixes of GE's optional integrations (see the module docstring).
_OPTIONAL = ("sqlalchemy", "google.auth", "google.oauth2", "google.cloud", "google.api_core")


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


class _ImportShaper(importlib.abc.MetaPathFinder):
    """Loads ``lazy`` modules lazily, and reports ``absent`` ones as not installed, to
    imports made by the thread that imports GE (others, such as ``dapt validate``'s
    reader running alongside, import as usual)."""

    def __init__(self, lazy: tuple[str, ...], absent: tuple[str, ...]):
        self.lazy = lazy
        self.absent = absent
        self.thread = threading.get_ident()

    def find_spec(self, name, path, target=None):
        if threading.get_ident() != self.thread:
            return None
        if _matches(name, self.absent):
            raise ModuleNotFoundError(f"No module named {name!r} (not imported for Great Expectations)", name=name)
        if name not in self.lazy:
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None and spec.loader is not None:
                    spec.loader = importlib.util.LazyLoader(spec.loader)
                    return spec
        return None


#: What ``copy.deepcopy`` returns as is (the types its dispatch table maps to "atomic").
_ATOMIC = frozenset({
    type(None), bool, int, float, complex, str, bytes, type, range, property, types.CodeType,
    types.FunctionType, types.BuiltinFunctionType, type(Ellipsis), type(NotImplemented),
})


def slot_deepcopier(cls: type) -> Callable | None:
    """A ``__deepcopy__`` for ``cls`` that gives what ``copy.deepcopy`` gives: a new
    instance whose every slot holds a deep copy of the original's (through the same memo,
    so shared and cyclic references stay shared), without the pickle protocol's round
    trip. ``None`` when ``cls`` keeps state anywhere but in its ``__slots__`` or
    customizes how it is copied or pickled, where that equivalence does not hold."""
    customized = (
        cls.__dictoffset__ or "__deepcopy__" in dir(cls) or cls in copyreg.dispatch_table
        or cls.__reduce_ex__ is not object.__reduce_ex__ or cls.__reduce__ is not object.__reduce__
        or cls.__getstate__ is not object.__getstate__ or cls.__setattr__ is not object.__setattr__
        or any(hasattr(cls, name) for name in ("__setstate__", "__getnewargs__", "__getnewargs_ex__"))
    )
    if customized:
        return None
    names = copyreg._slotnames(cls)  # what pickling reads, private names mangled

    def deepcopy(self, memo):
        twin = cls.__new__(cls)
        memo[id(self)] = twin
        for name in names:
            try:
                value = getattr(self, name)
            except AttributeError:  # an unset slot: deepcopy leaves it unset too
                continue
            setattr(twin, name, value if type(value) in _ATOMIC else copy.deepcopy(value, memo))
        return twin

    return deepcopy


@contextlib.contextmanager
def _fast_field_copies():
    from pydantic.v1.fields import FieldInfo, ModelField

    patched = []
    for cls in (ModelField, FieldInfo):
        copier = slot_deepcopier(cls)
        if copier is not None:
            cls.__deepcopy__ = copier
            patched.append(cls)
    try:
        yield
    finally:
        for cls in patched:
            del cls.__deepcopy__


@contextlib.contextmanager
def _shaped_import():
    loaded = tuple(sys.modules)  # one atomic copy: another thread may be importing
    absent = tuple(p for p in _OPTIONAL if not any(_matches(m, (p,)) for m in loaded))
    shaper = _ImportShaper(_LAZY, absent)
    sys.meta_path.insert(0, shaper)
    try:
        with lifelong_imports(), _fast_field_copies():
            yield
    finally:
        sys.meta_path.remove(shaper)


with _shaped_import():
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.datasource.fluent import PandasDatasource
    from great_expectations.datasource.fluent.pandas_datasource import DataFrameAsset
    from great_expectations.expectations.metadata_types import FailureSeverity
    from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView

__all__ = [
    "BatchDefinition",
    "DataContextConfig",
    "DataFrameAsset",
    "DefaultJinjaIndexPageView",
    "DefaultJinjaPageView",
    "FailureSeverity",
    "InMemoryStoreBackendDefaults",
    "PandasDatasource",
    "ProgressBarsConfig",
    "gx",
    "gxe",
]
