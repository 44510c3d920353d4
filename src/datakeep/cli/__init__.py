"""The ``datakeep`` command line: Gradient's command tree over the library."""
