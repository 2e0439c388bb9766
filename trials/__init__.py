"""The repository's workload folder, kept as thin re-exports of :mod:`tunedp.workloads`.

The built-in workloads live in ``tunedp.workloads`` (so the wheel installs
them under the project's own name, not as a generic top-level ``trials``
package); this folder is not part of the wheel. ``tunedp`` never imports
``trials``: configs name workloads through :func:`tunedp.workloads.resolve_workload`.
"""
