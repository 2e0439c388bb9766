"""The allowed import directions between tunedp's stages (docs/architecture.md §2), asserted from the source.

Every ``import tunedp.x`` of every module, deferred ones included, is read
from the syntax tree and checked against :data:`LAYERS`: a module may import
only modules of its own layer or of a lower one. An arrow that points up
fails with the importing file, the line and both layers, so a change that
would tangle the stages is caught where it is made (heavy libraries per
layer, and import cycles, are ``tests/integration/test_layers.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tunedp"

#: Bottom to top; a module belongs to the layer of the longest prefix that names it. What each
#: layer holds and why it sits where it does is docs/architecture.md §2.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("tunedp.errors",)),
    ("accounting", ("tunedp.accounting",)),
    ("workloads and optimizers", ("tunedp.workloads", "tunedp.optim")),
    ("config", ("tunedp.config",)),
    ("planners and ledger", ("tunedp.planning.single_stage", "tunedp.planning.staged", "tunedp.ledger")),
    ("release", ("tunedp.release",)),
    (
        "execution",
        (
            "tunedp.run.mode_run",
            "tunedp.run.ray_backend",
            "tunedp.run.staged",
            "tunedp.run.trial",
            "tunedp.run.resume",
            "tunedp.run.scratch",
            "tunedp.run.interrupts",
            "tunedp.run.scoped",
            "tunedp.run.failures",
            # The pre-flight's checks: below the driver (they import only lower layers); the Ray backend
            # raises their PreflightError when the cluster cannot run a trial, before the charge.
            "tunedp.run.preflight",
            # The hypo mode's proposal density: arithmetic over the config's space that the Tune
            # searcher (tunedp.run.ray_backend.searchers) draws from; it imports only the config.
            "tunedp.modes.hypo_proposal",
        ),
    ),
    ("search modes and observers", ("tunedp.modes", "tunedp.observe")),
    ("planning facade", ("tunedp.planning",)),
    ("driver", ("tunedp.run",)),
    ("commands and kits", ("tunedp.cli", "tunedp.audit", "tunedp.testing", "tunedp")),
)


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of ``module`` (the longest matching prefix wins)."""
    best, found = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    if found < 0:
        raise AssertionError(f"{module} is in no layer of LAYERS: add it")
    return found


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute ``tunedp`` import in ``path``, deferred ones included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("tunedp")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("tunedp"):
            if node.module == "tunedp":  # "from tunedp import x": x is a module or a name of the namespace
                found += [(node.lineno, f"tunedp.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def upward_arrows(package: Path = PACKAGE) -> list[str]:
    """Every import that points from a lower layer to a higher one, as ``file:line: a → b``."""
    arrows = []
    for path in sorted(package.rglob("*.py")):
        source = _module_name(path, package)
        for line, target in imports_of(path):
            if target in ("tunedp", "tunedp.__version__"):
                continue  # the lazy namespace itself loads nothing: any module may name it (its path, its version)
            if layer_of(target) > layer_of(source):
                arrows.append(
                    f"{path.relative_to(package.parent)}:{line}: {source} ({LAYERS[layer_of(source)][0]}) → "
                    f"{target} ({LAYERS[layer_of(target)][0]})"
                )
    return arrows


def test_every_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        layer_of(_module_name(path))


def test_no_import_points_up() -> None:
    arrows = upward_arrows()
    assert not arrows, "imports against docs/architecture.md §2:\n" + "\n".join(arrows)


def test_the_check_sees_an_upward_arrow_deferred_or_not(tmp_path: Path) -> None:
    """A planner that imports the driver inside a function is caught; a driver importing a planner is not."""
    package = tmp_path / "tunedp"
    (package / "planning").mkdir(parents=True)
    (package / "run").mkdir()
    (package / "planning" / "single_stage.py").write_text("def f():\n    from tunedp.run.driver import search\n")
    (package / "run" / "driver.py").write_text("from tunedp.planning.single_stage import f\n")
    assert upward_arrows(package) == [
        "tunedp/planning/single_stage.py:2: tunedp.planning.single_stage (planners and ledger) → "
        "tunedp.run.driver (driver)"
    ]


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("tunedp.planning", "planning facade"),
        ("tunedp.planning.staged", "planners and ledger"),
        ("tunedp.run.ray_backend.trainable", "execution"),
        ("tunedp.run.driver", "driver"),
        ("tunedp", "commands and kits"),
    ],
)
def test_the_longest_prefix_decides(module: str, layer: str) -> None:
    assert LAYERS[layer_of(module)][0] == layer
