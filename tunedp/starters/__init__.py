"""Commented starter configs shipped with the wheel; ``tunedp init --workload NAME`` writes one."""
