"""runapi's side-by-side benchmark: `make bench` (or `python -m bench.run`). See bench/README.md."""
