"""Seamless KFP components: one sub-package per pipeline stage, shared code in `common`."""
