"""Trust: the three layers every stage goes through for bytes it did not make itself.

- :mod:`featx.trust.store`: the sealed-artifact store. Every file featx writes under its cache
  (dataset files, row-store segments, converted weights, ONNX graphs, anything added later) is
  written atomically with its space reserved, sealed with a digest bound to the artifact's key,
  opened only when it is a regular file, and moved aside (kept) when its seal fails.
- :mod:`featx.trust.reader`: the bounded reader. Every item featx reads (a file, an fsspec URL,
  an archive member, a container record) is read with a size cap, a deadline and bounded
  retries; a list that came from a remote place names only remote items unless allowed.
- :mod:`featx.trust.outputs`: the owned-output writer. Every output featx writes outside its
  cache (reports, predictions, exports, pipeline copies) replaces only what featx wrote there,
  atomically, and never deletes what it did not write.

Imports nothing of featx but :mod:`featx.errors` and :mod:`featx.utils`.
"""
