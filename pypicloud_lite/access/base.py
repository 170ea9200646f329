"""The AccessBackend interface: who is calling, and what they may do."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    username: str
    is_admin: bool = False


class AccessBackend(ABC):
    @abstractmethod
    def authenticate(self, username: str, password: str) -> Identity | None:
        """The identity these credentials prove, or None. Costs the same for unknown users."""

    @abstractmethod
    def can_read(self, identity: Identity | None, project: str) -> bool:
        """May this caller (None: anonymous) see the project and download its files?"""

    @abstractmethod
    def can_write(self, identity: Identity | None, project: str) -> bool:
        """May this caller upload new files to the project (creating it if needed)?"""
