"""Changes made to an index through its public routes (legacy upload, the JSON API), each answer checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import webtest

from pypicloud_lite.naming import normalize
from tests.support.apiutil import call
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.legacy import upload_dist


def _version(version: str) -> str:
    return quote(version, safe="+!")


@dataclass(frozen=True)
class IndexDriver:
    """One app, changed as `headers` (an admin, unless a test means otherwise)."""

    app: webtest.TestApp
    headers: dict[str, str]
    dist_dir: Path

    def build(self, name: str, version: str, kind: str = "wheel", **build: object) -> Path:
        folder = self.dist_dir / f"{normalize(name)}-{version}-{kind}"
        if kind == "wheel":
            return build_wheel(folder, name, version, **build)  # type: ignore[arg-type]
        return build_sdist(folder, name, version, **build)  # type: ignore[arg-type]

    def upload(self, path: Path, name: str, version: str, headers: dict[str, str] | None = None) -> int:
        """Upload a built file under `name` (its display name); the answer's status (never a server error)."""
        resp = upload_dist(self.app, headers or self.headers, path, name, version)
        assert resp.status_int < 500, (path.name, resp.status, resp.body[:500])
        return resp.status_int

    def _change(self, method: str, url: str, json: object = None) -> int:
        resp = call(self.app, method, url, self.headers, json=json)
        assert resp.status_int < 500, (method, url, resp.status, resp.body[:500])
        return resp.status_int

    def yank(self, project: str, version: str, reason: str | None = None) -> int:
        body = {"reason": reason} if reason is not None else {}
        return self._change("POST", f"/api/projects/{project}/versions/{_version(version)}/yank", body)

    def unyank(self, project: str, version: str) -> int:
        return self._change("DELETE", f"/api/projects/{project}/versions/{_version(version)}/yank")

    def set_status(self, project: str, status: str, reason: str | None = None) -> int:
        body = {"status": status, **({"reason": reason} if reason is not None else {})}
        return self._change("PUT", f"/api/projects/{project}/status", body)

    def delete_file(self, project: str, filename: str) -> int:
        return self._change("DELETE", f"/api/projects/{project}/files/{quote(filename, safe='+!')}")

    def delete_release(self, project: str, version: str) -> int:
        return self._change("DELETE", f"/api/projects/{project}/versions/{_version(version)}")

    def reload(self) -> dict[str, object]:
        """POST /admin/reload?wait=1: the reload's result once it has run."""
        resp = call(self.app, "POST", "/admin/reload?wait=1", self.headers)
        assert resp.status_int == 200, (resp.status, resp.body[:500])
        result: dict[str, object] = resp.json
        return result
