"""tunedp as an installable library: the wheel, installed into a fresh venv, works outside the repository.

How the fresh venv gets its dependencies, and why: this machine has no
network index for torch/Ray/MLflow and no pip cache, so ``pip install
tunedp.whl --find-links /opt/wheels -c constraints.txt`` cannot resolve the
dependencies offline. A venv made with ``--system-site-packages`` from the
project venv's interpreter sees the *base* interpreter's site-packages, not
the project venv's, so that does not help either. Instead the fresh venv
gets one ``.pth`` line naming the project venv's site-packages (where the
pinned torch 2.13.0 CPU build and the other dependencies already are), and
the wheel is installed ``--no-deps`` by the project venv's pip run against the
fresh interpreter (``pip --python``; the fresh venv needs no pip of its own,
which saves bootstrapping one). Directories named in a ``.pth`` file
do not have *their* ``.pth`` files run, so the project's editable install
stays inactive: ``tunedp`` is imported from the wheel, which the test checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ray_nodes import stop_node, wait_for_alive_nodes, wait_for_port
from search_helpers import digits_table_search

REPO = Path(__file__).resolve().parents[2]


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return done


@pytest.mark.slow
@pytest.mark.xdist_group("ray_cluster")  # never beside the other two-node test (make test runs two workers)
def test_the_wheel_installs_into_a_fresh_venv_and_plans_and_searches_outside_the_repo(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    # Both projects in one pip run, built with the project venv's setuptools.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--wheel-dir", str(dist), str(REPO), str(REPO / "examples" / "breast_cancer")], cwd=tmp_path)  # fmt: skip
    (wheel,) = dist.glob("tunedp-*.whl")
    (example,) = dist.glob("tunedp_example_breast_cancer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not any(name.startswith("trials/") for name in names)  # no generic top-level package
    assert {"tunedp/starters/digits.yaml", "tunedp/starters/csv.yaml", "tunedp/workloads/digits_torch.py"} <= set(names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    (torch_requirement,) = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: torch")]
    assert ">=" in torch_requirement and "<" in torch_requirement and "==" not in torch_requirement  # a range
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    # The built-ins are listed once, in the registry: the wheel registers only the console script
    # (the installed search below still resolves `workload: digits`, and the example's entry point).
    assert "[tunedp.workloads]" not in entry_points and "tunedp = tunedp.cli:main" in entry_points

    env_dir = tmp_path / "venv"
    venv.create(env_dir)  # no pip of its own: the project venv's pip installs into it (--python)
    python = env_dir / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(purelib) / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # tunedp and the example workload package, installed as wheels (no Python path tricks).
    # --ignore-installed: the .pth exposes the project venv, where tunedp is installed (editable) too.
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
          "--ignore-installed", str(wheel), str(example)])  # fmt: skip

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TUNEDP_HOME=str(tmp_path / "home"), TUNEDP_TRACKING="0", RAY_USAGE_STATS_ENABLED="0")
    where = _run([str(python), "-c", "import tunedp; print(tunedp.__file__)"], cwd=work, env=env).stdout
    assert where.startswith(purelib), where
    tunedp = str(env_dir / "bin" / "tunedp")
    # An installed package keeps one MLflow store per user beside the ledgers, not ./mlflow of each folder.
    code = "from tunedp.observe.mlflow_store import default_mlflow_dir; print(default_mlflow_dir())"
    store = _run([str(python), "-c", code], cwd=work, env=env).stdout.strip()
    assert store == str(tmp_path / "home" / "mlflow"), store

    _run([tunedp, "init", "--workload", "digits"], cwd=work, env=env)
    plan = json.loads(_run([tunedp, "plan", "--config", "digits.yaml", "--json"], cwd=work, env=env).stdout)
    assert plan["workload"] == "digits" and plan["dataset_size"] == 1200 and plan["search_epsilon"] > 0

    config = yaml.safe_load((REPO / "examples" / "breast_cancer" / "config.yaml").read_text())
    (work / "breast_cancer.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # The config's workload declares the dataset and its sizes: no --dataset, no --size.
    _run([tunedp, "budget", "init", "--config", "breast_cancer.yaml", "--epsilon", "8", "--delta", "1e-3"],
         cwd=work, env=env)  # fmt: skip
    _run([tunedp, "search", "--config", "breast_cancer.yaml", "--output", "out", "--max-concurrent", "2"],
         cwd=work, env=env)  # fmt: skip
    report = json.loads((work / "out" / "report.json").read_text())
    assert report["status"] == "completed" and report["ledger"]["dataset"] == "breast_cancer"
    assert len(report["trials"]) == 2  # the grid's two points, each trained in a Ray worker of the venv
    # What this test proves is installability; utility is the benchmarks' job (a private run varies).
    assert 0.0 <= report["best"]["test_metric"] <= 1.0 and report["best"]["hyperparameters"]
    assert report["best"]["test_label"] == "exact, outside the ε guarantee"

    # The same package and a CSV table on a two-node Ray cluster started from the fresh venv, so
    # every worker on both nodes imports tunedp and the example from the installed wheels.
    _write_csv_search(work)
    charged: dict[str, list[float]] = {"breast_cancer": [report["privacy"]["charged_epsilon"]], "digits_table": []}
    with _two_node_cluster(python, env) as cluster:
        # While the nodes come up: the table's ledger, and what `tunedp plan` shows before each search.
        _run([tunedp, "budget", "init", "--config", "table.yaml", "--epsilon", "8", "--delta", "1e-4"],
             cwd=work, env=env)  # fmt: skip
        cluster.join()
        configs = {"breast_cancer.yaml": "on_cluster", "table.yaml": "table_on_cluster"}
        plans = {name: _run([tunedp, "plan", "--config", name, "--json"], cwd=work, env=env).stdout for name in configs}
        address = cluster.address()
        for config_name, output in configs.items():
            planned = json.loads(plans[config_name])
            _run([tunedp, "search", "--config", config_name, "--output", output, "--ray-address", address,
                  "--max-concurrent", "2"], cwd=work, env=env)  # fmt: skip
            report = json.loads((work / output / "report.json").read_text())
            assert report["status"] == "completed" and len(report["trials"]) == 2
            assert len(report["ray_nodes"]) == 2, report["ray_nodes"]  # one trial on each node
            # A grid's charge is fixed in advance: the ε `tunedp plan` showed before the search is what it charged.
            assert report["privacy"]["charged_epsilon"] == pytest.approx(planned["search_epsilon"], rel=1e-9)
            charged[report["ledger"]["dataset"]].append(report["privacy"]["charged_epsilon"])
    # Every search charged its own dataset's ledger, and only that; the ledger composes its charges
    # under RDP, so two searches cost more than either and at most their sum.
    spent = {
        dataset: json.loads(_run([tunedp, "budget", "show", "--dataset", dataset, "--json"], cwd=work, env=env).stdout)
        for dataset in charged
    }
    (table,) = charged["digits_table"]
    assert spent["digits_table"]["spent_epsilon"] == pytest.approx(table, rel=1e-9)
    assert max(charged["breast_cancer"]) < spent["breast_cancer"]["spent_epsilon"] <= sum(charged["breast_cancer"])


def _write_csv_search(folder: Path) -> None:
    """scikit-learn's real digits as a CSV table and a two-point grid search over it (``table.yaml``)."""
    data = digits_table_search(folder)
    data["budget"] = {"epsilon": 4.0, "delta": 1e-4}
    data["search"] = {"mode": "grid"}
    # Short trials: on a cluster Tune does not hand a finished trial's worker to the next one
    # (tunedp.run.ray_backend.cluster.reuse_actors), so each of the two runs where its CPU was
    # reserved, one on each node, however soon the first ends.
    data["training"] = {"steps": 60, "expected_batch_size": 120, "evaluations": 1}
    data["space"] = {
        "coupling": "lr_clip",
        "params": {
            "step_size": {"distribution": "choice", "values": [1.0, 3.0]},
            "clip_norm": {"distribution": "fixed", "value": 1.0},
        },
    }
    (folder / "table.yaml").write_text(yaml.safe_dump(data))


class _Cluster:
    """A head and a worker node on 127.0.0.1, one CPU each, run by ``python`` (the fresh venv's).

    Started in steps, so the test does other work while the nodes come up:
    the head at once, the worker node by :meth:`join` (once the head's GCS
    listens), and :meth:`address` waits until both are alive.
    """

    def __init__(self, python: Path, env: dict[str, str]) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self._address = f"127.0.0.1:{port}"
        self._python = str(python)
        self._env = {**env, "RAY_AUTH_MODE": "disabled"}
        self._ray = [self._python, "-m", "ray.scripts.scripts", "start", "--node-ip-address", "127.0.0.1",
                     "--num-cpus", "1", "--block", "--disable-usage-stats",
                     "--object-store-memory", str(128 * 1024 * 1024)]  # fmt: skip
        self.nodes: list[subprocess.Popen[bytes]] = []
        self._start("--head", "--port", str(port), "--include-dashboard", "false")

    def _start(self, *arguments: str) -> None:
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.nodes.append(subprocess.Popen([*self._ray, *arguments], env=self._env, start_new_session=True, **quiet))

    def join(self) -> None:
        wait_for_port(self._address)
        self._start("--address", self._address)

    def address(self) -> str:
        wait_for_alive_nodes(self._python, self._address, 2, self._env)
        return self._address


@contextlib.contextmanager
def _two_node_cluster(python: Path, env: dict[str, str]) -> Iterator[_Cluster]:
    """A :class:`_Cluster` starting; both nodes stopped at the end, whatever happened."""
    cluster = None
    try:
        cluster = _Cluster(python, env)
        yield cluster
    finally:
        for process in reversed(cluster.nodes if cluster is not None else []):
            stop_node(process)
