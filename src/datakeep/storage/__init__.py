"""The storage engine: content-addressed, deduplicated version content on any provider."""
