"""Fits of Dask DataFrames: the in-memory objectives mapped over partitions held on the workers."""
