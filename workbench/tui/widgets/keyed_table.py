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

    CHUNK = 100  # rows added per event-loop turn

    def __init__(self, *args: Any, key_column: str = "id", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_column = key_column
        self._cells: dict[str, tuple[Any, ...]] = {}
        self._order: list[str] = []
        self._wanted: list[str] = []
        self._queue: list[tuple[str, tuple[Any, ...]]] = []
        self._feeding = False

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
        """Show exactly ``rows``. Returns the number of rows added, removed or changed."""
        wanted = dict(rows)
        upserts = [(k, cells) for k, cells in rows if self._cells.get(k) != cells]
        removes = [k for k in self._cells if k not in wanted]
        self.apply(upserts, removes, [k for k, _ in rows])
        return len(upserts) + len(removes)

    def apply(self, upserts: Sequence[tuple[str, tuple[Any, ...]]], removes: Sequence[str],
              order: list[str]) -> None:
        """Add or update ``upserts``, drop ``removes``, then show rows in ``order`` (all keys).

        Many new rows are added ``CHUNK`` at a time across event-loop turns (with the order
        applied once all are in), so loading thousands of rows never freezes the screen.
        """
        col_keys = list(self.columns.keys())
        gone = set(removes)
        if gone:
            self._queue = [(k, c) for k, c in self._queue if k not in gone]
        for k in removes:
            if k in self._cells:
                self.remove_row(k)
                del self._cells[k]
        for k, cells in upserts:
            old = self._cells.get(k)
            if old is None:
                self._queue.append((k, cells))
                continue
            for i, (a, b) in enumerate(zip(old, cells, strict=False)):
                if a != b:
                    self.update_cell(k, col_keys[i], b, update_width=False)
            self._cells[k] = cells
        self._wanted = list(order)
        if len(self._queue) > self.CHUNK:  # the top of the list shows first
            pos = {k: i for i, k in enumerate(order)}
            self._queue.sort(key=lambda kc: pos.get(kc[0], len(pos)))
        if not self._feeding:
            self._feed()

    @property
    def pending(self) -> int:
        """Rows still waiting to be added."""
        return len(self._queue)

    def _feed(self) -> None:
        keep = self.cursor_key()
        batch, self._queue = self._queue[:self.CHUNK], self._queue[self.CHUNK:]
        for k, cells in batch:
            if k not in self._cells:
                self.add_row(*cells, key=k)
            self._cells[k] = cells
        self._feeding = bool(self._queue)
        if self._feeding:
            self.set_timer(0.01, self._feed)
            return
        if self._wanted != self._order:
            self._sort_by({k: i for i, k in enumerate(self._wanted)})
            self._order = [k for k in self._wanted if k in self._cells]
        if keep is not None and keep in self._cells:
            self.move_cursor(row=self.get_row_index(RowKey(keep)), animate=False, scroll=False)

    def _sort_by(self, pos: dict[str, int]) -> None:
        # DataTable.sort hands ``key`` only cell values: the key column holds the row key.
        last = len(pos)
        self.sort(self.key_column, key=lambda value: pos.get(str(value), last))

    def clear_rows(self) -> None:
        self.clear()
        self._cells.clear()
        self._order, self._wanted, self._queue = [], [], []
