"""Tests of the S3 sync Lambda: its handler, its bundle and its deployment commands."""
