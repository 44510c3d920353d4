"""The shared-storage cache of fetched dataset content (see :mod:`datakeep.cache.store`)."""

from datakeep.cache.store import (
    Cache,
    CachedVersion,
    CacheEntry,
    CleanPlan,
    Fetch,
    Pin,
    PinInfo,
    Problem,
)

__all__ = ["Cache", "CacheEntry", "CachedVersion", "CleanPlan", "Fetch", "Pin", "PinInfo", "Problem"]
