"""A custom tunedp workload, packaged: see ``workload.py`` (declaration) and ``data.py`` (torch)."""
