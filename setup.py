"""The one packaging step setup.cfg cannot say: alembic/ ships inside the package as real files.

The schema history stays at the top of the repository, where operators run
`alembic -x ini=... upgrade head`; wheels and sdists carry it as
pypicloud_lite/db/migrations, where pypicloud_lite.db.migrate finds it.
"""

from setuptools import find_packages, setup

MIGRATIONS = {"pypicloud_lite.db.migrations": "alembic", "pypicloud_lite.db.migrations.versions": "alembic/versions"}

setup(
    packages=[*find_packages(include=["pypicloud_lite", "pypicloud_lite.*"]), *MIGRATIONS],
    package_dir=MIGRATIONS,
)
