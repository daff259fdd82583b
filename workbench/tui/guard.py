"""Results of background requests may land after their screen was closed."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from textual.css.query import NoMatches
from textual.dom import DOMNode

F = TypeVar("F", bound=Callable[..., Any])


def while_shown(fn: F) -> F:
    """Run a UI callback only while its screen is still in the DOM; a screen being torn down
    (closed while its request was in flight) silently drops the result."""

    @functools.wraps(fn)
    def wrapper(self: DOMNode, *args: Any, **kwargs: Any) -> Any:
        if not self.is_attached:
            return None
        try:
            return fn(self, *args, **kwargs)
        except NoMatches:
            return None  # children already removed

    return wrapper  # type: ignore[return-value]
