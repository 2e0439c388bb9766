"""The layering of docs/architecture.md (§2), asserted: which heavy libraries each layer loads, and no import cycles.

Each import runs in a fresh fork of one clean child (see ``_FORKSERVER``), so
what one test imported cannot hide what another loads. Only the Ray backend (and the search modes' Tune hooks,
inside functions) may load Ray/Tune/Optuna, only four observe modules MLflow;
the command line and ``tunedp report`` load neither Ray nor torch; the
accounting knows nothing of torch. The directions between packages are
``tests/unit/test_import_directions.py``.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "tunedp"
HEAVY = ("torch", "ray", "optuna", "mlflow")

#: module → the heavy libraries importing it may load (every other one must stay unloaded).
LAYERS: dict[str, set[str]] = {
    "tunedp": set(),
    "tunedp.cli": set(),
    "tunedp.config": set(),
    "tunedp.errors": set(),
    "tunedp.accounting": set(),
    "tunedp.ledger.sqlite": set(),
    "tunedp.accounting.trial_event": set(),
    "tunedp.planning.single_stage": set(),
    "tunedp.planning": set(),
    "tunedp.planning.staged": set(),
    "tunedp.run.staged": set(),
    "tunedp.workloads.public": set(),
    "tunedp.accounting.staged_event": set(),
    "tunedp.accounting.hypo": set(),
    "tunedp.modes.hypo_proposal": set(),
    "tunedp.release.disclosure": set(),
    "tunedp.release.records": set(),
    "tunedp.release.report": set(),
    "tunedp.observe.protocol": set(),
    "tunedp.release.selection": set(),
    "tunedp.observe.console": set(),
    "tunedp.run.driver": set(),
    "tunedp.config.space": set(),
    "tunedp.optim.specs": set(),
    "tunedp.accounting.remaining": set(),
    "tunedp.run.preflight": set(),
    "tunedp.run.failures": set(),
    "tunedp.run.interrupts": set(),
    "tunedp.observe.lines": set(),
    "tunedp.workloads": set(),
    "tunedp.workloads.registry": set(),
    "tunedp.workloads.csv_table": set(),
    "tunedp.workloads.digits": set(),
    "tunedp.workloads.adult": set(),
    "tunedp.workloads.fashion_mnist": set(),
    "tunedp.workloads.digits_torch": {"torch"},
    "tunedp.testing": {"torch"},
    "tunedp.optim": {"torch"},
    "tunedp.run.trial": {"torch"},
    "tunedp.observe": set(),
    "tunedp.observe.mlflow_store": set(),
    "tunedp.observe.mlflow_times": set(),
    "tunedp.observe.dashboard": set(),
    "tunedp.observe.mlflow_records": {"mlflow"},
    "tunedp.observe.mlflow_model": {"mlflow"},
    "tunedp.observe.mlflow_registry": {"mlflow"},
    "tunedp.observe.mlflow_tracker": {"mlflow"},
    "tunedp.run.ray_backend": {"ray"},
    "tunedp.run.ray_backend.cluster": {"ray"},
    "tunedp.run.ray_backend.tuner": {"ray"},
    "tunedp.run.ray_backend.trainable": {"ray"},
    "tunedp.run.ray_backend.records": {"ray"},
    "tunedp.run.ray_backend.searchers": {"ray"},
    "tunedp.modes": set(),
    "tunedp.modes.base": set(),
    "tunedp.modes.random": set(),
    "tunedp.modes.adaptive": set(),
    "tunedp.modes.grid": set(),
    "tunedp.modes.hypo": set(),
    "tunedp.modes.two_stage": set(),
    "tunedp.modes.public_proxy": set(),
    "tunedp.run.options": set(),
    "tunedp.run.charge": set(),
    "tunedp.run.mode_run": set(),
    "tunedp.run.release_step": set(),
    "tunedp.run.preflight.checks": set(),
    "tunedp.run.preflight.model": set(),
    "tunedp.run.preflight.estimate": set(),
    "tunedp.audit": set(),
    "tunedp.audit.bound": set(),
    "tunedp.audit.run": set(),
    "tunedp.audit.command": set(),
    "tunedp.audit.clip_check": set(),
    "tunedp.run.scratch": set(),
    "tunedp.audit.canaries": {"torch"},
}


#: The child every import check runs in. It loads the light libraries most tunedp modules share once
#: (an interpreter, numpy, scipy, pydantic, YAML, dp_accounting: most of a plain ``import`` of a module
#: that is ~2 s on a quiet core), checks that they load none of the HEAVY ones, then forks a fresh copy
#: of itself for each statement. A fork starts from that same state, never from what an earlier
#: statement imported, so each check sees only what its own statement loads (issue 28 §5: ~80 checks
#: no longer pay for ~80 interpreters importing scipy).
_FORKSERVER = r"""
import json, os, sys
import numpy, scipy.stats, scipy.optimize, pydantic, yaml, dp_accounting  # noqa: F401
heavy = json.loads(sys.argv[1])
preloaded = [m for m in heavy if m in sys.modules]
print(json.dumps({"preloaded": preloaded}), flush=True)
for line in sys.stdin:
    statement = json.loads(line)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # what a statement prints must not reach the replies
        try:
            exec(compile(statement, "<statement>", "exec"), {"__name__": "__statement__"})
            result = {"loaded": {m: m in sys.modules for m in heavy}}
        except BaseException as error:  # reported to the test, which fails with it
            result = {"error": f"{type(error).__name__}: {error}"}
        with os.fdopen(write, "w") as out:
            out.write(json.dumps(result))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        reply = answer.read()
    os.waitpid(pid, 0)
    print(reply or json.dumps({"error": "the forked check exited without an answer"}), flush=True)
"""


class _ImportChecker:
    """One fork-server child per pytest worker (see :data:`_FORKSERVER`)."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _FORKSERVER, json.dumps(list(HEAVY))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        hello = json.loads(self._readline())
        assert hello == {"preloaded": []}, f"the shared preload itself loads {hello}: the checks would be blind"

    def _readline(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        assert line, "the import-check child exited"
        return line

    def loaded_after(self, statement: str) -> dict[str, bool]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(statement) + "\n")
        self._process.stdin.flush()
        reply = json.loads(self._readline())
        assert "error" not in reply, f"{statement!r} failed: {reply['error']}"
        loaded: dict[str, bool] = reply["loaded"]
        return loaded



@functools.cache
def _checker() -> _ImportChecker:
    """The worker's one child; it ends with the worker (its stdin closes)."""
    return _ImportChecker()


def _loaded_after(statement: str) -> dict[str, bool]:
    return _checker().loaded_after(statement)


def test_the_fork_server_sees_what_a_statement_loads_and_forgets_it() -> None:
    """The shared child is no blind spot: a statement that loads torch is seen to, and the next one is not."""
    assert _loaded_after("import torch")["torch"]
    assert not _loaded_after("import json")["torch"]


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_each_layer_loads_only_its_heavy_libraries(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    unexpected = {name for name, present in loaded.items() if present and name not in LAYERS[module]}
    assert not unexpected, f"importing {module} loaded {sorted(unexpected)}"


def test_tunedp_report_loads_neither_ray_nor_torch(tmp_path: Path) -> None:
    """The whole ``tunedp report`` command, run in-process, on a report.json."""
    report = {
        "search_id": "0" * 32,
        "name": "x",
        "status": "completed",
        "started_at": "",
        "finished_at": "",
        "duration_s": 0.0,
        "privacy": {
            "mode": "grid",
            "release": "all",
            "accountant": "rdp",
            "charged_epsilon": 1.0,
            "delta": 1e-5,
            "ledger_delta": 1e-5,
            "noise_multiplier": 2.0,
            "trial_epsilon": 0.5,
            "search_epsilon": 1.0,
            "naive_epsilon": 1.0,
            "budget_epsilon": 1.0,
            "event": {},
            "plan": {},
        },
        "ledger": {"path": "l", "dataset": "digits", "global_epsilon": 3.0, "spent_before": 0.0, "spent_after": 1.0},
        "best": None,
        "trials": [],
        "config": {},
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    statement = (
        "from tunedp.cli import main\n"
        f"try:\n    main(['report', {str(tmp_path)!r}])\nexcept SystemExit as e:\n    assert not e.code, e.code"
    )
    loaded = _loaded_after(statement)
    assert not loaded["torch"] and not loaded["ray"], loaded


def test_only_the_backend_and_the_modes_tune_hooks_import_ray_tune_or_optuna() -> None:
    """Ray, Tune and Optuna: the backend package, and the search modes inside their functions only.

    A mode configures Tune (its ``param_space`` and ``tune_config``) but must load neither Ray nor torch
    on import, so planning stays light (docs/architecture.md §2).
    """
    heavy = {"ray", "optuna"}
    importers = {
        path.relative_to(REPO).as_posix()
        for path in PACKAGE.rglob("*.py")
        for name in _imported_names(path)
        if name.split(".")[0] in heavy
    }
    backend = {p for p in importers if p.startswith("tunedp/run/ray_backend/")}
    modes = {p for p in importers if p.startswith("tunedp/modes/")}
    assert importers == backend | modes, sorted(importers - backend - modes)
    assert backend and modes
    for path in sorted(PACKAGE.glob("modes/*.py")):
        at_top = _imported_names(path, top_level_only=True)
        assert not {name for name in at_top if name.split(".")[0] in heavy}, f"{path.name} imports Ray at the top"


def test_only_the_four_mlflow_modules_import_mlflow() -> None:
    """The store location, the published times and the dashboard server stay MLflow-free (``tunedp ui`` too)."""
    importers = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        for name in _imported_names(path)
        if name.split(".")[0] == "mlflow"
    }
    assert importers == {
        "observe/mlflow_records.py",
        "observe/mlflow_model.py",
        "observe/mlflow_registry.py",
        "observe/mlflow_tracker.py",
    }


def test_planning_every_builtin_loads_no_torch() -> None:
    statement = (
        "from search_helpers import small_config\nfrom tunedp.planning import plan_search\n"
        "for name in ('digits', 'adult', 'fashion_mnist'):\n"
        "    plan_search(small_config(workload=name, budget={'epsilon': 8.0, 'delta': 1e-6}))"
    )
    loaded = _loaded_after(f"import sys\nsys.path.insert(0, 'tests')\n{statement}")
    assert not loaded["torch"] and not loaded["ray"], loaded


def _imported_names(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every module ``path`` imports (deferred imports inside functions too, unless ``top_level_only``)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _internal_graph() -> dict[str, set[str]]:
    """tunedp module → the tunedp modules it imports (any import, deferred ones included)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imported_names(path):
            # "from tunedp.x import y" may name a module tunedp.x.y or an attribute of tunedp.x.
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported != "tunedp":
                targets.add(imported)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that ends where it starts), or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles_in_tunedp() -> None:
    cycle = find_cycle(_internal_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_cycle_check_finds_cycles_and_accepts_a_dag() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
