"""ppc-reload: rebuild an ini's cache from its storage (the same reload as POST /admin/reload)."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Never, TextIO

from tqdm import tqdm

from pypicloud_lite.access import console_audit
from pypicloud_lite.cdn import writer_cache
from pypicloud_lite.config import load_ini
from pypicloud_lite.errors import Conflict, PypicloudLiteError
from pypicloud_lite.reload import ReloadProgress, ReloadRun, begin_reload
from pypicloud_lite.reload_estimate import estimate
from pypicloud_lite.storage import build_storage

WAIT_POLL_SECONDS = 2.0
# How often the progress is drawn: a bar (tqdm) on a terminal, a plain line otherwise (a log file keeps every one).
BAR_SECONDS = 0.2
LINE_SECONDS = 5.0


def _line(progress: ReloadProgress, console: TextIO) -> None:
    console.write(f"ppc-reload: {estimate(progress.as_dict(), time.time()).line()}\n")
    console.flush()


def _bar(progress: ReloadProgress, bar: tqdm[Never]) -> None:
    """The bar (tqdm's) at the run's files done of its total, with the phase and what is left as its text."""
    shown = estimate(progress.as_dict(), time.time())
    bar.total, bar.n = shown.total, shown.done
    bar.set_description_str(shown.phase, refresh=False)
    bar.set_postfix_str(shown.line(), refresh=False)
    bar.refresh()


@contextmanager
def progress_shown(run: ReloadRun, console: TextIO) -> Iterator[None]:
    """Draw the run's progress while it executes: a bar on a terminal, a plain line every LINE_SECONDS else."""
    tty = console.isatty()
    stop = threading.Event()
    bar = tqdm(file=console, unit="file", dynamic_ncols=True, leave=True) if tty else None

    def draw() -> None:
        _bar(run.progress, bar) if bar is not None else _line(run.progress, console)

    def loop() -> None:
        while not stop.wait(BAR_SECONDS if tty else LINE_SECONDS):
            draw()

    thread = threading.Thread(target=loop, name="ppc-reload-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        draw()
        if bar is not None:
            bar.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ppc-reload", description=__doc__)
    parser.add_argument("ini", help="the server's ini file")
    parser.add_argument("--wait", action="store_true", help="if a reload is running, wait for it and then reload")
    parser.add_argument(
        "--verify-sidecars",
        action="store_true",
        help="also read every advertised PEP 658 sidecar (one GET each) and repair corrupt ones",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        settings = load_ini(args.ini)
        storage, cache = build_storage(settings.storage), writer_cache(settings, "reload")
        while True:
            try:
                run = begin_reload(storage, cache, settings.reload.workers, args.verify_sidecars)
                break
            except Conflict as exc:
                if not args.wait:
                    print(f"ppc-reload: {exc.message} (use --wait to wait for it)", file=sys.stderr)
                    return 2
                time.sleep(WAIT_POLL_SECONDS)

        detail = "ppc-reload" + (", verifying sidecars" if args.verify_sidecars else "")
        console_audit(settings).record("reload.start", f"cli:{getpass.getuser()}", None, detail=detail)

        def visible(progress: ReloadProgress) -> None:
            print(f"visible after {progress.visible_seconds}s: {json.dumps(progress.as_dict())}", flush=True)

        with progress_shown(run, sys.stderr):
            result = run.execute(on_visible=visible)
        cache.close()
    except PypicloudLiteError as exc:
        print(f"ppc-reload: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(result.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
