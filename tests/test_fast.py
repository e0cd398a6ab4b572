"""``evb._fast.fast_constructor`` builds the same objects as the normal dataclass constructor.

The decoders' hot paths build frozen dataclasses through the slot descriptors, skipping
``__init__``. For every module-level constructor the package makes (found by reading the
sources, so a new one cannot go untested), objects built from the fields of a generated value
must be indistinguishable from that value: equal, same type, same hash and repr, every field
the identical object, still frozen and slotted.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import evb
from evb._fast import fast_constructor
from evb.capture import CapturedFrame
from evb.ecp.wire import Ecpdu
from evb.frame import Frame
from evb.vdp.wire import FilterEntry, FilterFormat, VdpPdu, VsiManagerIdTlv, VsiTlv
from tests import strategies as s

#: Instances of every class the package builds with ``fast_constructor``.
INSTANCES: dict[type, st.SearchStrategy[Any]] = {
    FilterEntry: st.sampled_from(FilterFormat).flatmap(s.filter_entries),
    VsiTlv: s.vsi_tlvs(),
    VdpPdu: s.vdp_pdus,
    VsiManagerIdTlv: s.manager_id_tlvs,
    Ecpdu: s.ecpdus,
    Frame: s.frames(),
    CapturedFrame: st.builds(
        CapturedFrame,
        number=st.integers(1, 10**6),
        time=st.floats(0, 2e9, allow_nan=False),
        data=st.binary(max_size=100),
        linktype=st.integers(0, 300),
    ),
}

_USE = re.compile(r"^(\w+)\s*=\s*fast_constructor\((\w+)\)", re.MULTILINE)


def package_uses() -> list[tuple[str, str, str]]:
    """``(module, variable, class name)`` for each ``x = fast_constructor(Cls)`` in the package."""
    root = Path(evb.__file__).parent
    uses = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(("evb", *path.relative_to(root).with_suffix("").parts))
        uses += [(module, var, cls) for var, cls in _USE.findall(path.read_text())]
    return uses


USES = package_uses()


def test_every_use_is_covered() -> None:
    assert len(USES) >= 6, USES
    used = {getattr(importlib.import_module(module), cls) for module, _var, cls in USES}
    assert used <= set(INSTANCES), f"fast_constructor used on untested classes: {used - set(INSTANCES)}"


def assert_same(made: Any, original: Any) -> None:
    cls = type(original)
    assert type(made) is cls
    assert made == original
    assert hash(made) == hash(original)
    assert repr(made) == repr(original)
    for f in dataclasses.fields(cls):
        assert getattr(made, f.name) is getattr(original, f.name), f.name
    assert not hasattr(made, "__dict__")
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, first, getattr(original, first))
    assert dataclasses.replace(made) == original


@pytest.mark.parametrize(("module", "var", "cls_name"), USES, ids=[f"{m}.{v}" for m, v, _c in USES])
@s.DETERMINISTIC
@given(data=st.data())
def test_package_constructor_matches_dataclass(module: str, var: str, cls_name: str, data: st.DataObject) -> None:
    mod = importlib.import_module(module)
    make, cls = getattr(mod, var), getattr(mod, cls_name)
    original = data.draw(INSTANCES[cls])
    values = [getattr(original, f.name) for f in dataclasses.fields(cls)]
    assert_same(make(*values), original)
    assert_same(make(*values), cls(*values))


@pytest.mark.parametrize("cls", list(INSTANCES), ids=[c.__name__ for c in INSTANCES])
@s.DETERMINISTIC
@given(data=st.data())
def test_fresh_constructor_matches_dataclass(cls: type, data: st.DataObject) -> None:
    original = data.draw(INSTANCES[cls])
    values = {f.name: getattr(original, f.name) for f in dataclasses.fields(cls)}
    make = fast_constructor(cls)
    assert make.__name__ == f"make_{cls.__name__}"
    assert_same(make(*values.values()), original)
    assert_same(make(*values.values()), cls(**values))


def test_constructor_takes_every_field_positionally() -> None:
    make = fast_constructor(FilterEntry)
    with pytest.raises(TypeError):
        make(1, 2)  # defaults are not applied: every field must be given
    assert make(1, 2, True, None, None) == FilterEntry(vid=1, pcp=2, ps=True)
