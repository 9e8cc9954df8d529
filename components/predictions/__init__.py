"""The prediction log: the records serving writes and monitoring and lineage read.

`records.py` is the contract, `files.py` and `postgres.py` (with `spool.py`) the
backends, `reader.py` reads either.
"""
