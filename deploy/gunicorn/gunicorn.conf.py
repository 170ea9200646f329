"""gunicorn for pypicloud_lite: one worker process per core, each with its own app.

    gunicorn -c deploy/gunicorn/gunicorn.conf.py --paste production.ini

The ini's [app:main] is the app (its [server:main] is waitress's and is not read); logging comes from the
ini's [loggers] sections. Behind deploy/nginx/pypicloud-lite.conf, which buffers uploads and downloads, a
synchronous worker is never held by a slow client. Every worker serves from the shared cache and storage,
so an upload through one is on every worker's next page (README.md, "Several workers").
"""

import os

bind = "127.0.0.1:6543"
# One process per core (WEB_CONCURRENCY overrides it, as gunicorn's own default does).
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
worker_class = "sync"
# A 100 MB upload arrives whole from nginx; reading, hashing and storing it must fit in this.
timeout = 120
graceful_timeout = 30
# Each worker loads the app after the fork: its own database connections, AWS clients and CDN timer.
# (With --preload anyway, the app rebuilds itself in each worker on its first request.)
preload_app = False
# X-Forwarded-Proto is believed from nobody: web.public_url makes the links. To take the scheme from
# nginx instead, name its address here ("127.0.0.1"), as waitress's trusted_proxy does.
forwarded_allow_ips = ""
# Request lines and headers as waitress bounds them.
limit_request_line = 8190
limit_request_field_size = 8190
