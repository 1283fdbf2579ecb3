"""The live view of a running import: a rich progress bar in a terminal, a plain line every 10 s in a pipe."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeRemainingColumn

PLAIN_EVERY_SECONDS = 10.0


def counters_of(status: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in ((status.get("metadata") or {}).get("counters") or {}).items()}


class ImportProgress:
    def __init__(self, console: Console, import_id: str, total: int) -> None:
        self.console = console
        self.import_id = import_id
        self.total = total
        self.live = console.is_terminal
        self._last_line = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]Import {task.fields[import_id]}[/] {task.fields[state]}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} rows"),
                TextColumn(
                    "created {task.fields[created]:,}  updated {task.fields[updated]:,}  "
                    "errors {task.fields[errors]:,}"
                ),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
                refresh_per_second=4,
            )
            self._task = self._progress.add_task(
                "import",
                total=max(total, 1),
                import_id=import_id,
                state="STARTED",
                created=0,
                updated=0,
                errors=0,
                rate="",
            )

    def __enter__(self) -> ImportProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, status: dict[str, Any]) -> None:
        counters = counters_of(status)
        total = counters.get("TOTAL_ROWS", self.total) or self.total
        done = counters.get("ROWS_PROCESSED", 0)
        created, updated = counters.get("CREATED_OBJECTS", 0), counters.get("UPDATED_OBJECTS", 0)
        errors = counters.get("ROWS_WITH_ERRORS", 0)
        if self._progress is not None and self._task is not None:
            speed = self._progress.tasks[0].speed
            self._progress.update(
                self._task,
                total=max(total, 1),
                completed=done,
                state=status["state"],
                created=created,
                updated=updated,
                errors=errors,
                rate=f"{speed:,.0f} rows/s" if speed else "",
            )
            return
        now = time.monotonic()
        if now - self._last_line >= PLAIN_EVERY_SECONDS or status["state"] in ("DONE", "FAILED", "CANCELED"):
            self._last_line = now
            self.console.print(
                f"import {self.import_id} {status['state']}: {done:,}/{total:,} rows, created "
                f"{created:,}, updated {updated:,}, errors {errors:,}",
                highlight=False,
            )
