"""A delete, an identical re-upload and a yank of one file at once, against the real server: no upload is lost."""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.consistency_harness import listed, request, upload
from tests.support.distbuilder import build_wheel
from tests.support.harness import start_server
from tests.support.legacy import wheel_metadata

ROUNDS = 200
PROJECT = "racer"


def test_racing_deletes_uploads_and_yanks_never_lose_an_acknowledged_upload(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    try:
        storage = server.folder / "packages"
        outcomes: Counter[str] = Counter()
        with ThreadPoolExecutor(max_workers=3) as pool:
            for n in range(ROUNDS):
                version = f"1.{n}"
                wheel = build_wheel(tmp_path / "dists" / version, PROJECT, version)
                assert upload(server, wheel, PROJECT, version).status_code == 200
                racing = [
                    pool.submit(request, server, "DELETE", f"/api/projects/{PROJECT}/files/{wheel.name}", admin=True),
                    pool.submit(upload, server, wheel, PROJECT, version),
                    pool.submit(
                        request, server, "POST", f"/api/projects/{PROJECT}/versions/{version}/yank", admin=True, json={}
                    ),
                ]
                deleted, uploaded, yanked = (future.result() for future in racing)
                for response in (deleted, uploaded, yanked):
                    assert response.status_code < 500, (n, response.status_code, response.text)
                assert deleted.status_code == 200 and uploaded.status_code == 200, (n, deleted.text, uploaded.text)
                # "OK" alone: the upload found no row and indexed the file, so the delete had already ended.
                created = uploaded.json()["message"] == "OK"
                files = listed(server, PROJECT)
                on_disk = {f"{PROJECT}/{wheel.name}", f"{PROJECT}/{wheel.name}.metadata"}
                present_on_disk = {key for key in on_disk if (storage / key).is_file()}
                if wheel.name in files:
                    outcomes["re-uploaded after the delete"] += 1
                    entry = files[wheel.name]
                    assert entry["hashes"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
                    served = request(server, "GET", f"/packages/{PROJECT}/{wheel.name}")
                    assert served.status_code == 200 and served.content == wheel.read_bytes(), n
                    metadata = request(server, "GET", f"/packages/{PROJECT}/{wheel.name}.metadata")
                    assert metadata.status_code == 200 and metadata.content == wheel_metadata(wheel), n
                    assert present_on_disk == on_disk, n
                else:
                    outcomes["deleted after the upload"] += 1
                    assert not created, f"round {n}: an upload answered 'OK' (indexed) and is gone"
                    assert present_on_disk == set(), f"round {n}: the deleted file left {present_on_disk} behind"
    finally:
        server.stop()  # not left running once the test ends
    assert sum(outcomes.values()) == ROUNDS, outcomes  # every round ended in one of the two orders
