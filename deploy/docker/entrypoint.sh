#!/bin/sh
# The container's entry point: serve (the default), migrate, health, or any other command as given.
#
#   serve    gunicorn with deploy/gunicorn/gunicorn.conf.py on $PYPICLOUD_LITE_HOST:$PORT (0.0.0.0:6543), WEB_CONCURRENCY workers
#            (default: the cores); with PYPICLOUD_LITE_MIGRATE=1, ppc-migrate runs first.
#   migrate  ppc-migrate: the SQL schema brought to this release (PostgreSQL/MySQL, once per release).
#   health   exit 0 if /health answers 200 (the image's HEALTHCHECK).
#
# The ini: $PYPICLOUD_LITE_INI if set (it must exist), else a file mounted at
# /etc/pypicloud-lite/pypicloud-lite.ini, else the image's built-in one. PPC_* variables override any key of it.
# PYPICLOUD_LITE_SHARE and PYPICLOUD_LITE_MOUNTED_INI move the image's paths (the tests run this script outside
# a container with them).
set -eu

SHARE=${PYPICLOUD_LITE_SHARE:-/usr/local/share/pypicloud-lite}
MOUNTED=${PYPICLOUD_LITE_MOUNTED_INI:-/etc/pypicloud-lite/pypicloud-lite.ini}
HOST=${PYPICLOUD_LITE_HOST:-0.0.0.0}
PORT=${PORT:-6543}

ini() {
    if [ -n "${PYPICLOUD_LITE_INI:-}" ]; then
        if [ ! -f "$PYPICLOUD_LITE_INI" ]; then
            echo "pypicloud_lite: PYPICLOUD_LITE_INI names $PYPICLOUD_LITE_INI, which is not a file" >&2
            exit 78  # EX_CONFIG
        fi
        echo "$PYPICLOUD_LITE_INI"
    elif [ -f "$MOUNTED" ]; then
        echo "$MOUNTED"
    else
        echo "$SHARE/container.ini"
    fi
}

command=${1:-serve}
case "$command" in
    serve)
        if [ $# -gt 0 ]; then shift; fi
        config=$(ini)
        if [ "${PYPICLOUD_LITE_MIGRATE:-0}" = 1 ]; then
            ppc-migrate "$config"
        fi
        echo "pypicloud_lite: serving $config on $HOST:$PORT" >&2
        exec gunicorn -c "$SHARE/gunicorn.conf.py" --paste "$config" --bind "$HOST:$PORT" "$@"
        ;;
    migrate)
        shift
        config=$(ini)
        exec ppc-migrate "$config" "$@"
        ;;
    health)
        # No proxy: the variables a container inherits must not send this elsewhere.
        exec python -c "import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    opener.open('http://127.0.0.1:$PORT/health', timeout=5)
except Exception as exc:
    sys.exit(f'unhealthy: {exc}')"
        ;;
    *)
        exec "$@"
        ;;
esac
