"""The hub side of the SPE: workspace spawners, their lockdown, data preparation, lifecycle."""
