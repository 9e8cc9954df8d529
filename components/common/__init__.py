"""Code shared by every stage: configuration, dataset I/O, hashing, environment."""
