"""A moto S3 server whose listings read only the keys under their prefix, as a real bucket's do.

moto answers every listing by walking all the keys of the bucket (`S3Backend.list_objects`:
`for key_name, key in bucket.keys.items()`, after copying the whole key store), so on moto one
listing costs O(keys in the bucket) where Amazon S3 pages through the keys under the prefix
only. A 2,000-trial experiment holds about 30,000 keys, and pyarrow lists a prefix for every
"is this a directory" question, so on plain moto a resume at that size measures moto's walk
more than robprune (BENCHMARKS.md). This server keeps each bucket's key names sorted and hands
moto's own `list_objects` a view of the bucket holding only the keys under the prefix: moto's
code still builds every answer (delimiters, markers, pages, delete markers), so the answers
are moto's, only found without the walk. `tests/benchmarks/test_moto_indexed.py` checks that
they equal plain moto's.

Run as moto's `moto_server` is: `python benchmarks/moto_indexed.py -H 127.0.0.1 -p PORT`
(`bench_scale.py --s3-listing indexed` does).
"""

from __future__ import annotations

import bisect
import sys
import threading
from collections.abc import Iterator
from typing import Any

from moto.s3 import models
from moto.s3.utils import _VersionedKeyStore

__all__ = ["install", "main"]

_INDEX = "_sorted_names"  # per key store: its key names, sorted (built on first listing)
_LOCK = threading.RLock()  # moto's server answers requests on threads


def _names(store: _VersionedKeyStore) -> list[str]:
    names = store.__dict__.get(_INDEX)
    if names is None or len(names) != dict.__len__(store):  # built now, or changed unseen
        names = store.__dict__[_INDEX] = sorted(dict.keys(store))
    return names


def _added(store: _VersionedKeyStore, name: str) -> None:
    names = store.__dict__.get(_INDEX)
    if names is not None:
        at = bisect.bisect_left(names, name)
        if at == len(names) or names[at] != name:
            names.insert(at, name)


def _removed(store: _VersionedKeyStore, name: str) -> None:
    names = store.__dict__.get(_INDEX)
    if names is not None:
        at = bisect.bisect_left(names, name)
        if at < len(names) and names[at] == name:
            del names[at]


class _KeysUnder:
    """The part of a key store under `prefix`, with the `items()` moto's listing reads."""

    def __init__(self, store: _VersionedKeyStore, prefix: str) -> None:
        self.store, self.prefix = store, prefix

    def items(self) -> Iterator[tuple[str, Any]]:
        with _LOCK:
            names = _names(self.store)
            start = bisect.bisect_left(names, self.prefix)
            end = start
            while end < len(names) and names[end].startswith(self.prefix):
                end += 1
            under = names[start:end]
        for name in under:
            versions = self.store.getlist(name)
            if versions:  # removed since the slice was taken: as if listed a moment later
                yield name, versions[-1]


class _BucketUnder:
    """A bucket as moto's `list_objects` sees it: only its `keys`, cut to the prefix."""

    def __init__(self, bucket: Any, prefix: str) -> None:
        self.keys = _KeysUnder(bucket.keys, prefix)


def install() -> None:
    """Patch moto's key store and listing in this process (idempotent)."""
    if getattr(models.S3Backend.list_objects, "indexed", False):
        return
    list_objects = models.S3Backend.list_objects
    setitem, setlist, pop = (
        _VersionedKeyStore.__setitem__,
        _VersionedKeyStore.setlist,
        _VersionedKeyStore.pop,
    )

    def indexed_list_objects(
        self: Any, bucket: Any, prefix: Any, *args: Any, **kwargs: Any
    ) -> Any:
        if isinstance(bucket, models.FakeTableStorageBucket) or not isinstance(
            bucket.keys, _VersionedKeyStore
        ):
            return list_objects(self, bucket, prefix, *args, **kwargs)
        return list_objects(self, _BucketUnder(bucket, prefix or ""), prefix, *args, **kwargs)

    def tracked_setitem(self: Any, key: str, value: Any) -> Any:
        with _LOCK:
            _added(self, key)
            return setitem(self, key, value)

    def tracked_setlist(self: Any, key: Any, list_: Any) -> Any:
        with _LOCK:
            _added(self, key)
            return setlist(self, key, list_)

    def tracked_pop(self: Any, key: str) -> None:
        with _LOCK:
            _removed(self, key)
            return pop(self, key)

    indexed_list_objects.indexed = True  # type: ignore[attr-defined]
    models.S3Backend.list_objects = indexed_list_objects
    _VersionedKeyStore.__setitem__ = tracked_setitem
    _VersionedKeyStore.setlist = tracked_setlist
    _VersionedKeyStore.pop = tracked_pop


def main(argv: list[str] | None = None) -> None:
    """moto's server (same arguments), with indexed listings."""
    install()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
