"""Monitoring: drift and data quality of served traffic, live performance, alerts."""
