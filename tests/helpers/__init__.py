"""Reusable real servers for tests (PostgreSQL, a local JSON API); no mocks."""
