"""Where bytes live: one small interface, a local directory and S3-compatible storage behind it."""

from datakeep.providers.base import ObjectInfo, Provider

__all__ = ["ObjectInfo", "Provider"]
