"""Uploaded files are deleted once their import has ended longer ago than the retention; the import stays readable."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import httpx
from crm_common.testing import signed_headers
from import_svc.worker import ImportWorker
from sqlalchemy import text

from .conftest import all_errors, contacts_request, search_all, start_import, wait_final

REQUEST = contacts_request([("Email", "email"), ("First Name", "firstname")])


async def stored_files(app: Any, import_id: str) -> list[tuple[Path, bool]]:
    """(path, marked deleted) of each of the import's files."""
    async with app.state.runtime.sessionmaker() as session:
        rows = (await session.execute(text(
            "SELECT path, deleted_at IS NOT NULL FROM import_files WHERE import_id = :i ORDER BY position"),
            {"i": int(import_id)})).all()
    return [(Path(path), deleted) for path, deleted in rows]


async def test_only_files_of_imports_ended_longer_ago_than_the_retention_are_deleted(
        import_app_factory: Any, private_database: str, account_id: int) -> None:
    async with import_app_factory(database_url=private_database, run_worker=False) as client:
        client.headers.update(signed_headers(account_id))
        app = client.service_app  # type: ignore[attr-defined]
        ids = [(await start_import(client, REQUEST, {"c.csv": f"Email,First Name\nr{i}@keep-imports.com,R\n".encode()}
                                   )).json()["id"] for i in range(4)]
        ended_long_ago, ended_recently, failed_long_ago, still_waiting = ids
        async with app.state.runtime.sessionmaker() as session, session.begin():
            for import_id, state, age in ((ended_long_ago, "DONE", "31 days"), (ended_recently, "DONE", "29 days"),
                                          (failed_long_ago, "FAILED", "40 days")):
                await session.execute(text(
                    f"UPDATE imports SET state = :s, completed_at = now() - interval '{age}' WHERE id = :i"),
                    {"s": state, "i": int(import_id)})
            # Waiting since long ago, but not ended: its file is still to be read.
            await session.execute(text("UPDATE imports SET created_at = now() - interval '60 days' WHERE id = :i"),
                                  {"i": int(still_waiting)})
        worker = ImportWorker(app.state.runtime, app.state.runtime.resources.records, app.state.runtime.settings)
        assert app.state.runtime.settings.file_retention_days == 30
        assert await worker.sweep_files() == 2
        assert await worker.sweep_files() == 0  # nothing left to do: a second replica's sweep finds nothing

        for import_id in (ended_long_ago, failed_long_ago):
            ((path, deleted),) = await stored_files(app, import_id)
            assert deleted and not path.exists() and not path.parent.exists()
        for import_id in (ended_recently, still_waiting):
            ((path, deleted),) = await stored_files(app, import_id)
            assert not deleted and path.exists()
        status = await client.get(f"/crm/v3/imports/{ended_long_ago}")
        assert status.status_code == 200
        assert status.json()["state"] == "DONE" and len(status.json()["metadata"]["fileIds"]) == 1
        await client.post(f"/crm/v3/imports/{still_waiting}/cancel")


async def test_an_import_whose_file_is_gone_still_shows_status_and_errors_and_reverts(
        import_app_factory: Any, private_database: str, records: httpx.AsyncClient, account_id: int) -> None:
    content = b"Email,First Name\nkept@gone-imports.com,Kept\nnot-an-email,Bad\n"
    async with import_app_factory(database_url=private_database, file_retention_days=0,
                                  file_sweep_interval=0.05) as client:
        client.headers.update(signed_headers(account_id))
        app = client.service_app  # type: ignore[attr-defined]
        done = await wait_final(client, (await start_import(client, REQUEST, {"c.csv": content})).json()["id"])
        assert done["state"] == "DONE", done
        for _ in range(600):  # the worker's periodic sweep, not a direct call
            ((path, deleted),) = await stored_files(app, done["id"])
            if deleted:
                break
            await asyncio.sleep(0.05)
        assert deleted and not path.exists()

        status = (await client.get(f"/crm/v3/imports/{done['id']}")).json()
        assert (status["state"], status["metadata"]["counters"], status["metadata"]["fileIds"]) == (
            "DONE", done["metadata"]["counters"], done["metadata"]["fileIds"])
        errors = await all_errors(client, done["id"])
        assert [(e["sourceData"]["lineNumber"], e["errorType"], e["sourceData"]["rowData"]) for e in errors] == [
            (3, "INVALID_EMAIL", ["not-an-email", "Bad"])]
        error_file = await client.get(f"/corral/v1/imports/{done['id']}/errors.csv")
        assert error_file.status_code == 200 and "INVALID_EMAIL" in error_file.text

        assert [c["properties"]["email"] for c in await search_all(records, "contacts", ["email"])] == [
            "kept@gone-imports.com"]
        reverted = await client.post(f"/crm/v3/imports/{done['id']}/revert")
        assert reverted.status_code == 200, reverted.text
        assert reverted.json()["state"] == "REVERTED"
        assert await search_all(records, "contacts", ["email"]) == []


async def test_upload_directories_no_import_refers_to_are_swept_after_a_day(
        import_app_factory: Any, private_database: str, account_id: int) -> None:
    async with import_app_factory(database_url=private_database, run_worker=False) as client:
        client.headers.update(signed_headers(account_id))
        app = client.service_app  # type: ignore[attr-defined]
        import_id = (await start_import(client, REQUEST, {"c.csv": b"Email,First Name\nkept@orphans.io,K\n"})).json()["id"]
        ((kept_file, _),) = await stored_files(app, import_id)
        store = Path(app.state.runtime.settings.file_store_dir)
        left_by_a_dead_start = store / str(account_id) / "0123abcd" / "0-contacts.csv"
        left_by_a_dead_preview = store / "previews" / "4567ef01" / "upload.csv"
        in_progress = store / str(account_id) / "89abcdef" / "0-contacts.csv"
        two_days_ago = time.time() - 2 * 86_400
        for path in (left_by_a_dead_start, left_by_a_dead_preview, in_progress):
            path.parent.mkdir(parents=True)
            path.write_text("Email\nx@orphans.io\n")
        for directory in (left_by_a_dead_start.parent, left_by_a_dead_preview.parent, kept_file.parent):
            os.utime(directory, (two_days_ago, two_days_ago))

        worker = ImportWorker(app.state.runtime, app.state.runtime.resources.records, app.state.runtime.settings)
        assert await worker.sweep_orphan_uploads() == 2
        assert not left_by_a_dead_start.parent.exists() and not left_by_a_dead_preview.parent.exists()
        assert in_progress.exists(), "a directory touched within the day may belong to a call still running"
        assert kept_file.exists(), "an import's own file stays, however old its directory"
        assert await worker.sweep_orphan_uploads() == 0
        await client.post(f"/crm/v3/imports/{import_id}/cancel")
