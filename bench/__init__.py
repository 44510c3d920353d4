"""The storage benchmark: ``python -m bench`` (or ``bench/run.sh``, which also installs the peer tools)."""
