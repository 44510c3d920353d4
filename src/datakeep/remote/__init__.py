"""The library's client interface spoken over HTTP to a datakeep server."""
