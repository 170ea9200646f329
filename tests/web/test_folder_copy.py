"""A storage folder copied without its times (plain `cp -r`) serves, after a reload into an empty cache, every page
the first server showed: upload times, uploaders, yanks and reasons, the status and its reason."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.support.apiutil import BOB, creds, running, static_users
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, basic_auth
from tests.support.index_driver import IndexDriver
from tests.support.served_pages import assert_same_pages, served_pages, upload_times
from tests.support.settings import server_settings

ADMIN = basic_auth(UPLOADER, UPLOADER_PASSWORD)
USERS = {**static_users(BOB), "auth.admins": f"{UPLOADER},{BOB}"}
A_YEAR_AGO = 365 * 86400


def test_storage_folder_copied_without_times_reloads_into_the_same_pages(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    with running(server_settings(first, USERS)) as one:
        driver = IndexDriver(one, ADMIN, tmp_path / "dists")
        for name, version, kind, user in [
            ("Foo.Bar", "1.0", "wheel", ADMIN),
            ("Foo.Bar", "1.0", "sdist", creds(BOB)),
            ("Foo.Bar", "1.1.0", "wheel", ADMIN),
            ("Foo.Bar", "2.0", "wheel", creds(BOB)),
            ("baz_qux", "0.1", "sdist", ADMIN),
        ]:
            assert driver.upload(driver.build(name, version, kind), name, version, user) == 200
        assert driver.yank("foo-bar", "1.0.0", "Broken build: use 1.1") == 200
        assert driver.yank("foo-bar", "2.0") == 200
        assert driver.set_status("baz-qux", "deprecated", "Use foo-bar instead") == 200
        expected = served_pages(one, ADMIN)
    known_times = upload_times(expected)
    assert len(known_times) == 5, known_times

    # What `cp -r` does: the bytes, not the times; and set every copy a year back, so no time can come from them.
    shutil.copytree(first / "packages", second / "packages", copy_function=shutil.copyfile)
    copies = [p for p in (second / "packages").rglob("*") if p.is_file()]
    for path in copies:
        past = path.stat().st_mtime - A_YEAR_AGO
        os.utime(path, (past, past))
    for path in copies:
        original = first / "packages" / path.relative_to(second / "packages")
        assert path.stat().st_mtime != original.stat().st_mtime

    with running(server_settings(second, USERS)) as two:
        IndexDriver(two, ADMIN, tmp_path / "unused").reload()
        actual = served_pages(two, ADMIN)
    assert upload_times(actual) == known_times, (
        "upload times after a reload of the copied folder (PEP 691 upload-time, /pypi/<p>/json "
        f"upload_time_iso_8601) are not the ones the first server showed:\n{upload_times(actual)}\n"
        f"expected {known_times}"
    )
    assert_same_pages(expected, actual, "the copied storage folder, reloaded into an empty cache")
