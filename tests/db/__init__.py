"""Tests of the SQL database owner: engines, tables, migrations."""
