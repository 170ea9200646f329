"""The check that fails a test touching files beside the repository (tests.support.confinement)."""

from __future__ import annotations

import contextlib
import glob
import os
from pathlib import Path

import pytest

from tests.support.confinement import WATCH, Confinement, OutsideRepository, main_checkout
from tests.support.data import REPO_ROOT


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(repository, a file in a `sibling` folder beside it), both in the temporary folder."""
    repo = tmp_path / "work" / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "inside.json").write_text("{}", encoding="utf-8")
    beside = tmp_path / "work" / "sibling" / "aws-events" / "s3-put.json"
    beside.parent.mkdir(parents=True)
    beside.write_text("{}", encoding="utf-8")
    (tmp_path / "work" / ".cache").mkdir()
    return repo, beside


def test_the_check_is_on_for_this_session() -> None:
    assert WATCH.active is not None
    assert WATCH.active.violation(str(REPO_ROOT.parent / "sibling" / "aws-events" / "s3-put.json"))
    assert WATCH.active.violation(str(REPO_ROOT / ".." / "sibling" / "x.json"))
    assert WATCH.active.violation(str(REPO_ROOT / "tests" / "data" / "aws-events" / "s3-put.json")) is None
    main = main_checkout(REPO_ROOT)
    if main is not None:  # a git worktree: beside the main checkout is watched too
        assert WATCH.active.violation(str(main.parent / "sibling" / "aws-events" / "s3-put.json"))


def test_a_clone_in_the_temporary_folder_is_still_watched_beside(layout: tuple[Path, Path]) -> None:
    repo, beside = layout
    # CI may clone into a temporary folder: the exempt temporary folder must not hide what is beside the clone.
    confinement = Confinement(repo, [repo.parent], exempt=[repo.parent.parent, repo.parent / "venv"])
    assert confinement.violation(str(beside)) == str(beside)
    assert confinement.violation(str(repo.parent.parent / "elsewhere" / "x")) is None  # not beside the clone
    assert confinement.violation(str(repo.parent / "venv" / "lib" / "x.py")) is None  # a nearer exempt folder
    # A repository directly in the temporary folder: its neighbours are the temporary files; they stay allowed.
    in_tmp = Confinement(repo, [repo.parent], exempt=[repo.parent])
    assert in_tmp.violation(str(beside)) is None


def test_what_is_beside_the_repository_and_what_is_not(layout: tuple[Path, Path]) -> None:
    repo, beside = layout
    confinement = Confinement(repo, [repo.parent], exempt=["/usr"])
    assert confinement.violation(str(beside)) == str(beside)
    assert confinement.violation(f"{repo}/../sibling/aws-events/s3-put.json") == str(beside)
    assert confinement.violation(str(repo.parent)) == str(repo.parent)  # listing it finds `sibling`
    assert confinement.violation(str(repo.parent / "repo-other" / "x")) is not None  # a prefix of no folder
    for fine in [repo, repo / "tests" / "inside.json", repo / ".venv" / "lib", repo.parent / ".cache" / "x"]:
        assert confinement.violation(str(fine)) is None, fine
    for fine_elsewhere in ["/usr/lib/python3/x.py", "/proc/self/status", "/dev/null", "/etc/hosts"]:
        assert confinement.violation(fine_elsewhere) is None, fine_elsewhere


def test_a_filesystem_root_as_the_parent_watches_nothing() -> None:
    confinement = Confinement(Path("/app"), [Path("/")])
    assert confinement.watched == ()
    assert confinement.violation("/etc/passwd") is None


def test_an_open_beside_the_repository_raises_and_is_recorded(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, beside = layout
    fake = Confinement(repo, [repo.parent])  # nothing exempt: the temporary folder is watched here
    monkeypatch.setattr(WATCH, "active", fake)
    assert (repo / "tests" / "inside.json").read_text(encoding="utf-8") == "{}"
    with pytest.raises(OutsideRepository, match="beside the repository"):
        beside.read_text(encoding="utf-8")
    with pytest.raises(OutsideRepository):
        os.listdir(beside.parent)
    with pytest.raises(OutsideRepository):
        glob.glob(str(repo.parent / "sibling" / "*"))
    with pytest.raises(OutsideRepository):
        (repo.parent / "new-folder").mkdir()
    # Caught by the code under test or not, the test phase fails afterwards.
    with contextlib.suppress(OSError):
        beside.read_bytes()
    monkeypatch.undo()
    assert len(fake.found) == 5, fake.found
    assert fake.found[0] == f"open {beside}"
    with pytest.raises(pytest.fail.Exception, match="beside the repository"), fake.checked():
        fake.found.append(f"open {beside}")
    with fake.checked():
        pass  # nothing new: no failure


def test_a_worktree_names_its_main_checkout(tmp_path: Path) -> None:
    main = tmp_path / "main"
    (main / ".git" / "worktrees" / "wt").mkdir(parents=True)
    (main / ".git" / "worktrees" / "wt" / "commondir").write_text("../..\n", encoding="utf-8")
    worktree = tmp_path / "trees" / "wt"
    worktree.mkdir(parents=True)
    (worktree / ".git").write_text(f"gitdir: {main / '.git' / 'worktrees' / 'wt'}\n", encoding="utf-8")
    assert main_checkout(worktree) == main.resolve()
    assert main_checkout(main) is None
    watched = Confinement.of(worktree).watched
    assert f"{tmp_path / 'trees'}/" in watched and f"{tmp_path}/" in watched
