"""Fast positional constructors for frozen, slotted dataclasses (decoder hot paths only).

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__``
by name; calling the slot descriptors directly is about twice as fast. Decoders use these
constructors for values they have already checked; everyone else uses the normal class call.
``tests/test_fast.py`` checks that both build equal objects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def fast_constructor(cls: type[T]) -> Callable[..., T]:
    """``make(f1, f2, ...)``: all fields, positionally, in declaration order, no checks."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    ns: dict[str, Any] = {"new": object.__new__, "cls": cls}
    for i, name in enumerate(names):
        ns[f"set{i}"] = cls.__dict__[name].__set__
    body = "".join(f"    set{i}(o, {name})\n" for i, name in enumerate(names))
    exec(f"def make({', '.join(names)}):\n    o = new(cls)\n{body}    return o\n", ns)
    make: Callable[..., T] = ns["make"]
    make.__name__ = f"make_{cls.__name__}"
    return make
