"""Cache backends: the contract on every backend, migrations, serial reads, SQLite safety."""
