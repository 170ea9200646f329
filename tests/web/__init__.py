"""Tests of the web layer: the simple API, the files view and the legacy upload API, through WSGI."""
