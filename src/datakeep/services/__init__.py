"""The library API, one service per resource; :class:`datakeep.Client` bundles them.

Services take user input (references as strings, paths), check it, and call the catalog and
the storage engine. The CLI and the server call only these, so both behave the same.
"""
