"""The `runapi` command line."""
