"""Installers against the real server: pip download/install and uv pip install into fresh venvs."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

from tests.support.distbuilder import build_wheel
from tests.support.harness import FOO, YANK_REASON, Clients, Completed, Corpus, Server
from tests.support.reload import delete_raw


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pip_download_fetches_pep658_metadata_and_the_indexed_bytes(
    published: Corpus, server: Server, clients: Clients, tmp_path: Path
) -> None:
    dest = tmp_path / "downloads"
    done = clients.pip(
        "download",
        "--no-deps",
        "-v",
        "--only-binary",
        ":all:",
        "--index-url",
        server.simple_url,
        "--dest",
        dest,
        f"{FOO}==1.0",
    ).check()
    wheel = published.foo_wheel.name
    # pip read the dependencies from the PEP 658 sidecar rather than from the wheel.
    assert f"/packages/foo-bar-baz/{wheel}.metadata" in done.output, done.output
    assert [p.name for p in dest.iterdir()] == [wheel]
    assert sha256(dest / wheel) == server.listed_files("foo-bar-baz")[wheel] == sha256(published.foo_wheel)


def test_pip_install_into_a_fresh_venv(published: Corpus, clients: Clients, tmp_path: Path) -> None:
    python = clients.new_venv(tmp_path / "venv")
    clients.pip_install(python, f"{FOO}==1.0", "localver==1.0+cpu").check()
    assert clients.module_version(python, "foo_bar_baz") == "1.0"
    assert clients.module_version(python, "localver") == "1.0+cpu"


def test_pip_skips_a_release_whose_requires_python_excludes_this_python(
    published: Corpus, server: Server, clients: Clients, tmp_path: Path
) -> None:
    doc = server.project_json("pyreq")
    assert doc is not None
    assert {f["filename"]: f["requires-python"] for f in doc["files"]} == {
        published.pyreq_ok.name: ">=3.8",
        published.pyreq_py2.name: "<3",
        published.pyreq_future.name: ">=3.99",
    }
    python = clients.new_venv(tmp_path / "venv")
    clients.pip_install(python, "pyreq").check()
    assert clients.module_version(python, "pyreq") == "1.0"


def test_pip_ignores_yanked_releases_unless_pinned(published: Corpus, clients: Clients, tmp_path: Path) -> None:
    python = clients.new_venv(tmp_path / "venv")
    clients.pip_install(python, "yankee").check()
    assert clients.module_version(python, "yankee") == "1.0"
    # Only yanked releases satisfy >=2: nothing to install.
    refused = clients.pip_install(python, "yankee>=2")
    assert refused.returncode != 0, refused.output
    pinned = clients.pip_install(python, "yankee==2.0").check()
    assert clients.module_version(python, "yankee") == "2.0"
    assert f"Reason for being yanked: {YANK_REASON}" in pinned.output, pinned.output
    clients.pip_install(python, "yankee==3.0").check()
    assert clients.module_version(python, "yankee") == "3.0"


def test_uv_pip_install(published: Corpus, server: Server, clients: Clients, tmp_path: Path) -> None:
    venv = tmp_path / "uv-venv"
    clients.uv("venv", "--python", sys.executable, venv).check()
    python = venv / "bin" / "python"
    clients.uv(
        "pip",
        "install",
        "--python",
        python,
        "--index-url",
        server.simple_url,
        "localver==1.0+cpu",
        f"{FOO}==1.0",
        "yankee",
        "pyreq",
    ).check()
    assert clients.module_version(python, "localver") == "1.0+cpu"
    assert clients.module_version(python, "foo_bar_baz") == "1.0"
    assert clients.module_version(python, "yankee") == "1.0"
    # uv deliberately ignores upper bounds on Requires-Python (2.0 says <3), never lower ones (3.0 says >=3.99).
    assert clients.module_version(python, "pyreq") in ("1.0", "2.0")


def page_statuses(output: str, project: str) -> list[str]:
    """The statuses of the project-page requests in pip's -vvv log (urllib3 logs every request)."""
    return re.findall(rf'"GET /simple/{project}/ HTTP/1\.1" (\d{{3}})', output)


def requests_made(output: str) -> str:
    return "\n".join(line.strip() for line in output.splitlines() if '"GET ' in line)


def cached_download(clients: Clients, cache: Path, dest: Path, project: str) -> Completed:
    return clients.pip(
        "download", "-vvv", "--no-deps", "--index-url", clients.server.simple_url, "--dest", dest, project, cache=cache
    ).check()


def test_pip_cache_revalidates_an_unchanged_page_with_304(clients: Clients, tmp_path: Path) -> None:
    clients.twine(build_wheel(tmp_path / "dists", "revalidated", "1.0")).check()
    cache = tmp_path / "pip-cache"
    first = cached_download(clients, cache, tmp_path / "first", "revalidated")
    assert page_statuses(first.output, "revalidated") == ["200"], requests_made(first.output)
    # pip keeps the page (it has an ETag) and asks again with If-None-Match: nothing changed, so 304.
    second = cached_download(clients, cache, tmp_path / "second", "revalidated")
    assert page_statuses(second.output, "revalidated") == ["304"], requests_made(second.output)


def test_pip_cache_sees_a_new_upload(clients: Clients, tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    clients.twine(build_wheel(dists, "refreshed", "1.0")).check()
    cache = tmp_path / "pip-cache"
    cached_download(clients, cache, tmp_path / "first", "refreshed")
    assert [p.name for p in (tmp_path / "first").iterdir()] == ["refreshed-1.0-py3-none-any.whl"]
    clients.twine(build_wheel(dists, "refreshed", "2.0")).check()
    cached_download(clients, cache, tmp_path / "second", "refreshed")
    assert [p.name for p in (tmp_path / "second").iterdir()] == ["refreshed-2.0-py3-none-any.whl"]


def test_unusual_legal_filenames_install(server: Server, clients: Clients, tmp_path: Path) -> None:
    # An epoch (!), a local version (+) and a build tag: legal, and each must survive the link round trip.
    built = build_wheel(tmp_path / "dists", "oddname", "1!1.0+local.1")
    wheel = built.with_name(built.name.replace("-py3-none-any", "-1-py3-none-any"))
    built.rename(wheel)
    assert wheel.name == "oddname-1!1.0+local.1-1-py3-none-any.whl"
    clients.twine(wheel).check()
    assert server.listed_files("oddname") == {wheel.name: sha256(wheel)}
    status, _headers, page = server.get("/simple/oddname/")
    assert status == 200
    assert 'href="../../packages/oddname/oddname-1!1.0+local.1-1-py3-none-any.whl#sha256=' in page.decode()

    # Crafted names for a newer release are refused, so they cannot break the project's page for installers.
    newer = build_wheel(tmp_path / "crafted", "oddname", "2!2.0")
    for crafted in (
        "oddname-2!2.0-py3-none-any#.whl",
        "oddname-2!2.0-py3-none-any x.whl",
        "oddname-2!2.0-py3-none-an!y.whl",
    ):
        newer = newer.rename(newer.with_name(crafted))
        refused = clients.twine(newer)
        assert refused.returncode != 0, refused.output
        assert "400 Bad Request" in refused.output, refused.output
        assert "Invalid wheel filename" in refused.output, refused.output
    assert server.listed_files("oddname") == {wheel.name: sha256(wheel)}

    python = clients.new_venv(tmp_path / "venv")
    clients.pip_install(python, "oddname").check()
    assert clients.module_version(python, "oddname") == "1!1.0+local.1"

    venv = tmp_path / "uv-venv"
    clients.uv("venv", "--python", sys.executable, venv).check()
    uv_python = venv / "bin" / "python"
    clients.uv(
        "pip", "install", "--python", uv_python, "--index-url", server.simple_url, "oddname==1!1.0+local.1"
    ).check()
    assert clients.module_version(uv_python, "oddname") == "1!1.0+local.1"


def test_pip_installs_a_wheel_whose_sidecar_went_missing(server: Server, clients: Clients, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dists", "sidecarfix", "1.0")
    clients.twine(wheel).check()
    sidecar = f"sidecarfix/{wheel.name}.metadata"
    with server.package_index() as index:
        delete_raw(index.storage, sidecar)
        assert index.storage.stat(sidecar) is None
    python = clients.new_venv(tmp_path / "venv")
    done = clients.pip_install(python, "-v", "sidecarfix==1.0").check()
    # pip read the core metadata at its PEP 658 URL: read again from the wheel, and the sidecar written back.
    assert f"/packages/sidecarfix/{wheel.name}.metadata" in done.output, done.output
    assert clients.module_version(python, "sidecarfix") == "1.0"
    with server.package_index() as index:
        assert index.storage.stat(sidecar) is not None


def test_pip_finds_no_unyanked_file_of_a_release_yanked_under_another_spelling(
    server: Server, clients: Clients, tmp_path: Path
) -> None:
    # Release 1.0 of `spelt` has a file spelling it 1.0.0: yanking "1.0" yanks that one too.
    dists = tmp_path / "dists"
    clients.twine(
        build_wheel(dists, "spelt", "1.0"),
        build_wheel(dists, "spelt", "1.0.0", tag="py2.py3-none-any"),
    ).check()
    server.yank("spelt", "1.0", "broken")
    python = clients.new_venv(tmp_path / "venv")
    refused = clients.pip_install(python, "spelt>=1")
    assert refused.returncode != 0, refused.output
    pinned = clients.pip_install(python, "spelt==1.0").check()
    assert "Reason for being yanked: broken" in pinned.output, pinned.output
