"""The datakeep server: Gradient's Datasets API for teams (see :mod:`datakeep.server.app`)."""
