"""Gradient's legacy experiment datasets: S3 objects, folders and buckets mounted at ``/data/NAME``."""
