"""Search modes: how the trials of a search are chosen, priced and released.

This package imports neither torch nor Ray on import.
"""
