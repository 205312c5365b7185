"""The model before any numerics: formula parsing, reading data frames, the design (learned once,
rebuilt for new data and partitions), ModelData, validation and separation checks.
"""
