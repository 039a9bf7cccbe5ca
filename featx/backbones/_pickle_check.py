"""The opcode pre-pass of :mod:`featx.backbones._pth`: a pickle's opcodes are walked
(:func:`pickletools.genops`, nothing is built) before it is unpickled, and what a state dict never
needs is refused with :class:`pickle.UnpicklingError`.

Allowed: the opcodes of plain values, containers, allowed globals (the reader's own allow-list,
passed in) and persistent ids; memo indices within the stream; nesting at most ``max_depth``
levels (deeper values crash CPython when hashed); ``BUILD`` only on an ``OrderedDict`` with a
dict state, never on a function or a tensor; no container changed after it went into another one
(no cycles).
"""

from __future__ import annotations

import io
import pickle
import pickletools
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(eq=False)
class _Node:
    """What the static check knows of one value on the unpickler's stack."""

    kind: str  # atom, tuple, list, dict, set, frozenset, global, odict, tensor, storage
    depth: int = 0
    value: object = None  # a string atom's text; a global's (module, name)
    sealed: bool = False  # inside another value: may no longer change

    def __str__(self) -> str:
        if self.kind == "global":
            return "global {}.{}".format(*self.value)
        return self.kind


_ATOMS = frozenset({
    "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1",
    "LONG4", "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES",
    "SHORT_BINBYTES", "BINBYTES8", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
})
_EMPTY = {"EMPTY_TUPLE": "tuple", "EMPTY_LIST": "list", "EMPTY_DICT": "dict", "EMPTY_SET": "set"}
_FROM_MARK = {"TUPLE": "tuple", "LIST": "list", "DICT": "dict", "FROZENSET": "frozenset"}
_TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
# op -> (kinds it may change, items taken: a count, or None for "back to the mark")
_MUTATE = {
    "APPEND": (("list",), 1), "APPENDS": (("list",), None),
    "SETITEM": (("dict", "odict"), 2), "SETITEMS": (("dict", "odict"), None),
    "ADDITEMS": (("set",), None),
}
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


class PickleCheck:
    """Walk one pickle's opcodes (:func:`pickletools.genops`, nothing is built) and refuse what
    a state dict never needs; see the module docstring for the rules.

    ``allowed_global(module, name)`` raises :class:`pickle.UnpicklingError` for a global the
    reader does not resolve; ``result_kind`` maps each allowed callable ``(module, name)`` to
    what a ``REDUCE`` on it returns (``"odict"`` or ``"tensor"``); values may nest at most
    ``max_depth`` levels.
    """

    def __init__(self, allowed_global: Callable[[str, str], object],
                 result_kind: dict[tuple[str, str], str], max_depth: int):
        self.allowed_global = allowed_global
        self.result_kind = result_kind
        self.max_depth = max_depth
        self.stack: list[_Node] = []
        self.marks: list[int] = []
        self.memo: dict[int, _Node] = {}
        self.ops = 0

    def run(self, f: io.BytesIO) -> None:
        for op, arg, pos in pickletools.genops(f):
            self.ops += 1
            self.pos = pos
            self.step(op.name, arg)
            if op.name == "STOP":
                return

    def fail(self, why: str):
        raise pickle.UnpicklingError(f"{why} (pickle byte {self.pos})")

    def pop(self, n: int | None = 1) -> list[_Node]:
        """The top ``n`` nodes, or (``n=None``) those above the last mark, which is dropped."""
        floor = self.marks[-1] if self.marks else 0
        if n is None:
            if not self.marks:
                self.fail("malformed pickle: no MARK to pop back to")
            n = len(self.stack) - self.marks.pop()
        elif len(self.stack) - n < floor:
            self.fail("malformed pickle: stack underflow")
        items = self.stack[len(self.stack) - n:]
        del self.stack[len(self.stack) - n:]
        return items

    def push(self, kind: str, items=(), value=None) -> None:
        for item in items:
            item.sealed = True
        depth = 1 + max((i.depth for i in items), default=0) if kind != "atom" else 0
        self.stack.append(self.deep_enough(_Node(kind, depth, value)))

    def deep_enough(self, node: _Node) -> _Node:
        if node.depth > self.max_depth:
            self.fail(f"checkpoint nests deeper than {self.max_depth} levels")
        return node

    def top(self) -> _Node:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            self.fail("malformed pickle: stack underflow")
        return self.stack[-1]

    def step(self, op: str, arg) -> None:
        if op in ("PROTO", "FRAME"):
            return
        if op == "STOP":
            if len(self.stack) != 1 or self.marks:
                self.fail("malformed pickle: STOP with a stack that does not hold one value")
        elif op in _ATOMS:
            self.push("atom", value=arg if isinstance(arg, str) else None)
        elif op in _EMPTY:
            self.push(_EMPTY[op])
        elif op in _FROM_MARK:
            self.push(_FROM_MARK[op], self.pop(None))
        elif op in _TUPLE_N:
            self.push("tuple", self.pop(_TUPLE_N[op]))
        elif op in _MUTATE:
            kinds, n = _MUTATE[op]
            items = self.pop(n)
            target = self.top()
            self.change(target, kinds, items, op)
        elif op == "MARK":
            self.marks.append(len(self.stack))
        elif op == "POP":
            if self.marks and self.marks[-1] == len(self.stack):
                self.marks.pop()
            else:
                self.pop(1)
        elif op == "POP_MARK":
            self.pop(None)
        elif op == "DUP":
            self.stack.append(self.top())
        elif op in _GETS:
            if arg not in self.memo:
                self.fail(f"malformed pickle: memo entry {arg} read before it was written")
            self.stack.append(self.memo[arg])
        elif op in _PUTS or op == "MEMOIZE":
            index = len(self.memo) if op == "MEMOIZE" else arg
            if not 0 <= index <= self.ops:
                self.fail(f"memo index {index} is out of range")
            self.memo[index] = self.top()
        elif op == "GLOBAL":
            module, _, name = str(arg).partition(" ")
            self.add_global(module, name)
        elif op == "STACK_GLOBAL":
            module, name = self.pop(2)
            if not (isinstance(module.value, str) and isinstance(name.value, str)):
                self.fail("STACK_GLOBAL needs two strings")
            self.add_global(module.value, name.value)
        elif op == "REDUCE":
            fn, args = self.pop(2)
            if fn.kind != "global" or fn.value not in self.result_kind or args.kind != "tuple":
                self.fail(f"refusing REDUCE on a {fn} with a {args} of arguments")
            self.push(self.result_kind[fn.value], [args])
        elif op == "BINPERSID":
            (pid,) = self.pop(1)
            if pid.kind != "tuple":
                self.fail("a persistent id must be a tuple")
            self.push("storage", [pid])
        elif op == "BUILD":
            (state,) = self.pop(1)
            target = self.top()
            if target.kind != "odict" or state.kind != "dict":
                self.fail(f"refusing BUILD on a {target} with a {state} state: only an "
                          "OrderedDict with a dict state may be built")
            self.change(target, (target.kind,), [state], op)
        else:
            self.fail(f"opcode {op} is not allowed in a .pth checkpoint")

    def add_global(self, module: str, name: str) -> None:
        self.allowed_global(module, name)  # raises for anything else
        self.push("global", value=(module, name))

    def change(self, target: _Node, kinds, items: list[_Node], op: str) -> None:
        if target.kind not in kinds:
            self.fail(f"malformed pickle: {op} on a {target.kind}")
        if target.sealed:
            self.fail(f"refusing {op} on a {target.kind} already inside another value")
        if any(item is target for item in items):
            self.fail(f"refusing {op} that puts a {target.kind} inside itself")
        for item in items:
            item.sealed = True
        target.depth = max(target.depth, 1 + max((i.depth for i in items), default=0))
        self.deep_enough(target)
