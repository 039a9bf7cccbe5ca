"""Plumbing every stage shares: the cache folder, parameter checks, JSON conversion, table
cells, progress lines, the version. Imports nothing else of featx."""
