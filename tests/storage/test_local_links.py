"""LocalStorage never reaches outside its folder through a symlink, and follows one that stays inside."""

from __future__ import annotations

from pathlib import Path

import pytest

from pypicloud_lite.errors import NotFound
from pypicloud_lite.storage.local import LocalStorage


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret-1.0.tar.gz").write_bytes(b"secret")
    root = tmp_path / "root"
    (root / "demo").mkdir(parents=True)
    (root / "demo" / "demo-1.0.tar.gz").write_bytes(b"demo")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "demo" / "secret-1.0.tar.gz").symlink_to(outside / "secret-1.0.tar.gz")
    (root / "alias").symlink_to(root / "demo", target_is_directory=True)
    return LocalStorage(root)


@pytest.mark.parametrize("key", ["escape/secret-1.0.tar.gz", "demo/secret-1.0.tar.gz"])
def test_a_symlink_out_of_the_folder_is_no_object(storage: LocalStorage, key: str) -> None:
    assert storage.stat(key) is None
    with pytest.raises(NotFound):
        storage.open(key)
    with pytest.raises(NotFound):
        storage.put_bytes(key, b"overwritten")
    assert (storage.root.parent / "outside" / "secret-1.0.tar.gz").read_bytes() == b"secret"


def test_a_symlink_within_the_folder_is_followed(storage: LocalStorage) -> None:
    found = storage.stat("alias/demo-1.0.tar.gz")
    assert found is not None and found.size == 4
    with storage.open("alias/demo-1.0.tar.gz") as fh:
        assert fh.read() == b"demo"


def test_plain_keys_and_missing_ones(storage: LocalStorage) -> None:
    found = storage.stat("demo/demo-1.0.tar.gz")
    assert found is not None and found.size == 4
    assert storage.stat("demo/absent-1.0.tar.gz") is None
    assert storage.stat("absent/absent-1.0.tar.gz") is None
    storage.put_bytes("new/new-1.0.tar.gz.metadata", b"meta")
    assert (storage.root / "new" / "new-1.0.tar.gz.metadata").read_bytes() == b"meta"
