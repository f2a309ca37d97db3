"""``validation.ge``'s slot-by-slot deep copy gives exactly what ``copy.deepcopy`` gives.

GE is imported with pydantic-v1's inherited fields copied by :func:`slot_deepcopier`.
The copies must not differ from the stock ones in any value, type or sharing, or GE's
models would behave differently from an unshaped import's.
"""

from __future__ import annotations

import copy
import copyreg
import types

import pytest

import validation.ge as ge


def _is_alias(node) -> bool:
    """typing's aliases (``Union[str, tuple[()]]``): a deep copy of one rebuilds it through
    typing's own caches, which hand back an earlier alias or a new one depending on what
    the process built before, so two copies are compared by what they spell."""
    return isinstance(node, (types.GenericAlias, types.UnionType)) or type(node).__module__ == "typing"


def _is_leaf(node) -> bool:
    return type(node) in ge._ATOMIC or isinstance(node, type) or _is_alias(node)


def _children(node) -> list:
    if isinstance(node, dict):
        return [v for item in node.items() for v in item]
    if isinstance(node, (list, tuple, set, frozenset)):
        return list(node)
    slots = [getattr(node, n) for n in copyreg._slotnames(type(node)) if hasattr(node, n)]
    return slots + list(getattr(node, "__dict__", {}).values())


def _walk(obj):
    """Every node below ``obj``, depth first, objects met again included."""
    stack = [obj]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        yield node
        if not _is_leaf(node) and id(node) not in seen:
            seen.add(id(node))
            stack.extend(reversed(_children(node)))


def _graph(obj, originals: set[int]) -> list:
    """``obj``'s object graph: leaves as themselves, every other object as its type and
    whether it is one of ``originals`` (ids in the graph that was copied), and a second
    visit as a reference to the first."""
    out: list = []
    order: dict[int, int] = {}
    for node in _walk(obj):
        if _is_alias(node):
            out.append(("alias", repr(node)))
        elif _is_leaf(node):
            out.append(node)
        elif id(node) in order:
            out.append(("again", order[id(node)]))
        else:
            order[id(node)] = len(order)
            out.append((type(node), "shared" if id(node) in originals else "new"))
    return out


def _assert_same_copies(original, fast_copy, stock_copy):
    originals = {id(node) for node in _walk(original)}
    assert _graph(fast_copy, originals) == _graph(stock_copy, originals)


def test_fields_of_every_ge_model_copy_as_deepcopy_copies_them():
    import pydantic.v1 as pydantic_v1

    models, todo = [], [pydantic_v1.BaseModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in models:
                models.append(sub)
                todo.append(sub)
    assert len(models) > 300  # GE's models, not a handful
    fields = [model.__fields__ for model in models]
    stock = copy.deepcopy(fields)
    with ge._fast_field_copies():
        fast = copy.deepcopy(fields)
    from pydantic.v1.fields import ModelField

    assert not hasattr(ModelField, "__deepcopy__")  # put back after the import
    assert sum(len(f) for f in fields) > 2500
    _assert_same_copies(fields, fast, stock)
    assert fast[0] is not fields[0]


class _Slotted:
    __slots__ = ("a", "__private", "unset", "shared", "again")


def test_slot_copy_keeps_cycles_sharing_mangled_and_unset_slots():
    obj = _Slotted()
    shared = [1, {"k": "v"}]
    obj.a = obj  # a cycle
    obj._Slotted__private = "p"
    obj.shared, obj.again = shared, shared
    stock = copy.deepcopy(obj)
    fast = ge.slot_deepcopier(_Slotted)(obj, {})
    _assert_same_copies(obj, fast, stock)
    assert fast.a is fast and fast.shared is fast.again and fast.shared is not shared
    assert not hasattr(fast, "unset") and fast._Slotted__private == "p"


class _WithState:
    __slots__ = ("a",)

    def __getstate__(self):
        return {"a": 0}


class _WithDict:
    __slots__ = ("a", "__dict__")


class _WithReduce:
    __slots__ = ("a",)

    def __reduce__(self):
        return (_WithReduce, ())


@pytest.mark.parametrize("cls", [_WithState, _WithDict, _WithReduce])
def test_a_class_that_shapes_its_own_state_keeps_deepcopy(cls):
    assert ge.slot_deepcopier(cls) is None
