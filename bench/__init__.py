"""syncctl benchmarks: `python -m bench --size 10k|100k|1M [--dsn DSN] [--scenario NAME ...]`.

Every figure is printed next to a baseline measured in the same run on the same data, so a
ratio means something on a shared machine. Nothing here asserts a timing: the table says
whether each goal was met, the exit status does not."""
