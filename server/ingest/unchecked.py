"""An array read without Numba's negative-index fix-up, for the compiled byte scanners.

Numba treats a signed index as possibly negative (Python's ``a[-1]``) and adds a compare
and an add to every element read, even with bounds checks off; in a loop that reads one
byte at a time that is a good part of the work. The scanners' indices are never negative
(positions in a buffer they check against its length themselves), so they read through
:func:`load`, which is ``a[i]`` without that fix-up (and, as everywhere here, without a
bounds check: the caller keeps ``0 <= i < len(a)``).
"""

from __future__ import annotations

from typing import Any

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _load_impl(typingctx: Any, arr: Any, i: Any) -> Any:
    if not isinstance(arr, types.Array) or arr.ndim != 1 or not isinstance(i, types.Integer):
        return None
    sig = arr.dtype(arr, i)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [idx], wraparound=False)  # type: ignore[no-untyped-call]
        return context.unpack_value(builder, aryty.dtype, ptr)

    return sig, codegen


#: ``load(a, i)``: ``a[i]`` of a 1-D array, for ``0 <= i < len(a)`` (compiled code only)
load: Any = intrinsic(_load_impl)
