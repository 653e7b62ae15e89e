"""Framework-free numerics for Tessera: aggregation, STAPLE, acquisition, models, simulation.

Nothing in this package may import Django or any Tessera app; apps call it with numpy arrays.
"""
