"""Online features for a request: direct reads of Feast's SQLite and Redis online
stores, the Feast SDK for anything else."""
