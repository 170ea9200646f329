"""What the admin API, the admin pages and start-up share: health checks, and a reload run in the background."""

from __future__ import annotations

import contextlib
import logging
import threading

from pypicloud_lite.errors import PypicloudLiteError
from pypicloud_lite.reload import ReloadRun
from pypicloud_lite.service import PackageIndex

logger = logging.getLogger(__name__)


def health_checks(index: PackageIndex) -> dict[str, str]:
    """ "ok" or the failure's message, for storage and for the cache."""
    checks = {"storage": index.storage.check_health, "cache": index.cache.check_health}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except PypicloudLiteError as exc:
            logger.warning("health check of %s failed: %s", name, exc.message)
            results[name] = exc.message
    return results


def run_in_background(run: ReloadRun) -> threading.Thread:
    def target() -> None:
        # A failure is recorded in the lock row as the reload's result, and logged by execute().
        with contextlib.suppress(Exception):
            run.execute()

    thread = threading.Thread(target=target, name="ppc-reload", daemon=True)
    thread.start()
    return thread
