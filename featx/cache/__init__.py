"""The HDF5 feature cache: keys, file layout, row store, and the ``cache_*`` maintenance functions.

The cache knows a configuration only as a :class:`StoreKey` (a key, a slug, the attributes to
store): it imports nothing of the stages that compute features.

Two kinds of file live under the cache folder (``featx.utils.config.cache_dir()`` by default)::

    <cache>/<dataset>-<where6>__<backbone>-<size>-<pooling>__<key8>.h5   one per dataset and config
    <cache>/rows/<backbone>-<size>-<pooling>__<key8>/seg-*.h5          the config's row store
    <cache>/damaged/...                                                damaged files, moved aside

``<where6>`` hashes the folder the dataset's images live in, so two datasets of the same name in
different folders get different files. Rows are keyed by the SHA-256 of the image bytes, so renamed
or moved files hit and only new content is extracted. Every stored row carries a digest, checked
when it is read; a damaged file is moved to ``damaged/`` and rebuilt. ``docs/cache.md`` describes
the layout and why a crash, a second writer or a damaged file cannot corrupt it. Checking every
row's digest is :func:`cache_check`; re-extracting rows to compare them is the extraction stage's
job: :func:`featx.extract.cache_verify`.
"""

from featx.cache.files import (
    dataset_file,
    dataset_rows,
    inspect_dataset_file,
    location_digest,
    read_attrs,
    read_dataset_file,
    row_store,
    write_dataset_file,
)
from featx.cache.keys import PlainKey, StoreKey, path_bytes, row_digests
from featx.cache.maintenance import (
    VerifyReport,
    cache_check,
    cache_info,
    cache_ls,
    cache_prune,
    cache_rm,
    check_entries,
    parse_size,
    resolve_entry,
)
from featx.cache.rowstore import RowStore
from featx.trust.store import (
    CacheWriteError,
    DamagedCacheError,
    DamagedCacheWarning,
    MissingRowsError,
    move_aside,
)

__all__ = [
    "CacheWriteError", "DamagedCacheError", "DamagedCacheWarning", "MissingRowsError",
    "PlainKey", "RowStore", "StoreKey", "VerifyReport", "cache_check", "cache_info", "cache_ls",
    "cache_prune", "cache_rm", "check_entries", "dataset_file", "dataset_rows",
    "inspect_dataset_file", "location_digest", "move_aside", "parse_size", "path_bytes",
    "read_attrs", "read_dataset_file", "resolve_entry", "row_digests", "row_store",
    "write_dataset_file",
]
