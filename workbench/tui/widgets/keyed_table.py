"""A DataTable that is updated in place from keyed rows (no full rebuild per poll)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.widgets import DataTable
from textual.widgets.data_table import RowKey


class KeyedTable(DataTable[Any]):
    """``sync(rows)`` makes the table show ``rows`` (``(key, cells)``, in display order),
    adding, removing and updating only what changed and keeping the cursor on the same key.

    The column named ``key_column`` must show each row's key as its plain text.
    """

    def __init__(self, *args: Any, key_column: str = "id", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_column = key_column
        self._cells: dict[str, tuple[Any, ...]] = {}
        self._order: list[str] = []

    @property
    def keys(self) -> list[str]:
        return list(self._order)

    def cursor_key(self) -> str | None:
        if not self._cells or self.row_count == 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:  # cursor outside the table
            return None
        return None if row_key.value is None else str(row_key.value)

    def sync(self, rows: Sequence[tuple[str, tuple[Any, ...]]]) -> int:
        """Returns the number of rows added, removed or changed."""
        keep = self.cursor_key()
        col_keys = list(self.columns.keys())
        wanted = {k: cells for k, cells in rows}
        changed = 0
        for k in [k for k in self._cells if k not in wanted]:
            self.remove_row(k)
            del self._cells[k]
            changed += 1
        for k, cells in rows:
            old = self._cells.get(k)
            if old is None:
                self.add_row(*cells, key=k)
                changed += 1
            elif old != cells:
                for i, (a, b) in enumerate(zip(old, cells, strict=False)):
                    if a != b:
                        self.update_cell(k, col_keys[i], b, update_width=False)
                changed += 1
            self._cells[k] = cells
        order = [k for k, _ in rows]
        if changed and order != [str(r.key.value) for r in self.ordered_rows]:
            pos = {k: i for i, k in enumerate(order)}
            self._sort_by(pos)
        self._order = order
        if keep is not None and keep in self._cells:
            self.move_cursor(row=self.get_row_index(RowKey(keep)), animate=False, scroll=False)
        return changed

    def _sort_by(self, pos: dict[str, int]) -> None:
        # DataTable.sort hands ``key`` only cell values: the key column holds the row key.
        last = len(pos)
        self.sort(self.key_column, key=lambda value: pos.get(str(value), last))

    def clear_rows(self) -> None:
        self.clear()
        self._cells.clear()
        self._order = []
