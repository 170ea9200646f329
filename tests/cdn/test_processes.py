"""Real processes: one killed right after its change, two flushing at once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypicloud_lite.models import AddFile
from tests.support.aws import Moto
from tests.support.cdn import OUTBOX_BACKENDS, create_distribution, invalidations, open_cache, outbox_database, wheel
from tests.support.data import REPO_ROOT

# argv: raw settings (JSON), distribution id, moto endpoint, action ("change" or "flush").
CHILD = """
import json, os, sys
from pypicloud_lite.cdn import CdnFlusher, CloudFrontPurger
from pypicloud_lite.models import AddFile
from tests.support.aws import Moto
from tests.support.cdn import cdn_settings, open_cache, wheel

raw, distribution, endpoint, action = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
moto = Moto(endpoint)
cache = open_cache(raw, distribution)
if action == "change":
    cache.apply(AddFile(wheel("demo", "1.0"), "demo"))
    os._exit(9)  # killed: no flush, no clean-up, no atexit
flusher = CdnFlusher(cache, CloudFrontPurger(distribution, moto.client("cloudfront")), cdn_settings(moto, distribution))
print(flusher.flush(force=True).state)
"""


@pytest.fixture(params=OUTBOX_BACKENDS)
def raw(request: pytest.FixtureRequest, moto: Moto, tmp_path: Path) -> Iterator[dict[str, str]]:
    with outbox_database(request.param, moto, tmp_path) as settings:
        # The schema (or tables) made once here: the children only open it.
        open_cache(settings).close()
        settings.pop("cache.create_tables", None)
        settings.pop("cache.migrate_on_start", None)
        yield settings


def child(raw: dict[str, str], distribution: str, moto: Moto, action: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(raw), distribution, moto.endpoint_url, action],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_process_killed_after_its_change_loses_nothing(raw: dict[str, str], moto: Moto) -> None:
    distribution = create_distribution(moto)
    killed = child(raw, distribution, moto, "change")
    _out, err = killed.communicate(timeout=120)
    assert killed.returncode == 9, err
    assert invalidations(moto, distribution) == []
    survivor = child(raw, distribution, moto, "flush")
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err
    assert out.split() == ["sent"]
    [sent] = invalidations(moto, distribution)
    assert sent["paths"] == ["/pypi/demo/1.0/json", "/pypi/demo/json", "/simple/", "/simple/demo/"]


def test_two_processes_flushing_together_send_one_invalidation(raw: dict[str, str], moto: Moto) -> None:
    distribution = create_distribution(moto)
    cache = open_cache(raw, distribution)
    cache.apply(AddFile(wheel("demo", "1.0"), "demo"))
    cache.close()
    flushers = [child(raw, distribution, moto, "flush") for _ in range(2)]
    states = []
    for process in flushers:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        states += out.split()
    # Whichever order they ran in: one sent it, the other found it busy or already done.
    assert sorted(states) in (["busy", "sent"], ["idle", "sent"])
    [sent] = invalidations(moto, distribution)
    assert sent["paths"] == ["/pypi/demo/1.0/json", "/pypi/demo/json", "/simple/", "/simple/demo/"]
