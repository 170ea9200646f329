"""The Cache interface: the metadata every index request is answered from."""

from __future__ import annotations

from abc import ABC, abstractmethod

from pypicloud_lite.models import PackageFile, Project


class Cache(ABC):
    """Every change bumps the global serial and the project's serial in the same write."""

    @abstractmethod
    def get_file(self, filename: str) -> PackageFile | None:
        """The file stored under this filename (filenames are unique index-wide)."""

    @abstractmethod
    def add_file(self, file: PackageFile, display_name: str) -> tuple[PackageFile, bool]:
        """Record a new file, creating its project if needed: (the stored row, whether it was added).

        If a row already exists under the filename (a racing upload), it is
        returned unchanged and nothing is written: the caller compares hashes.
        """

    @abstractmethod
    def delete_file(self, filename: str) -> bool:
        """Remove a file's row; False if there was none. The project is kept."""

    @abstractmethod
    def set_yanked(self, project: str, version: str, yanked: bool, reason: str | None) -> int:
        """Yank or unyank every file of one release; returns how many files changed."""

    @abstractmethod
    def set_project_status(self, name: str, status: str, reason: str | None) -> bool:
        """Set a project's PEP 792 status; False if there is no such project."""

    @abstractmethod
    def get_project(self, name: str) -> Project | None:
        """The project with this normalized name."""

    @abstractmethod
    def list_projects(self) -> list[Project]:
        """Every project, ordered by normalized name."""

    @abstractmethod
    def search_projects(self, query: str, offset: int, limit: int) -> tuple[list[Project], int]:
        """A page of projects whose normalized name contains `query`, by name, and the total matching."""

    @abstractmethod
    def files_of_projects(self, names: list[str]) -> list[PackageFile]:
        """Every file of these projects (one query for a page of projects)."""

    @abstractmethod
    def project_files(self, name: str) -> list[PackageFile]:
        """Every file of one project, ordered by filename."""

    @abstractmethod
    def serial(self) -> int:
        """The index-wide change serial (0 for an index that never changed)."""

    @abstractmethod
    def check_health(self) -> None:
        """Raise BackendUnavailable if the cache cannot be used."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and pools."""
