"""Seamless KFP components: one sub-package per pipeline stage, shared code in `common`."""

from components.common.feast_import import skip_feast_typechecks

# Before anything imports Feast (components/common/feast_import.py says why).
skip_feast_typechecks()
