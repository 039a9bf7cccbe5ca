"""Plumbing every stage shares: the cache folder, parameter checks, JSON, table cells, progress
lines, the Keras runtime (device, dtype policy, seeds) and the version. Imports nothing else of
featx."""
