"""End-to-end tests: the real server (pserve + waitress) driven by real clients (twine, pip, uv, pypi-simple)."""
