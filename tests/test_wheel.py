"""tunedp as an installable library: the wheel, installed into a fresh venv, works outside the repository.

How the fresh venv gets its dependencies, and why: this machine has no
network index for torch/Ray/MLflow and no pip cache, so ``pip install
tunedp.whl --find-links /opt/wheels -c constraints.txt`` cannot resolve the
dependencies offline. A venv made with ``--system-site-packages`` from the
project venv's interpreter sees the *base* interpreter's site-packages, not
the project venv's, so that does not help either. Instead the fresh venv
gets one ``.pth`` line naming the project venv's site-packages (where the
pinned torch 2.13.0 CPU build and the other dependencies already are), and
the wheel is installed ``--no-deps``. Directories named in a ``.pth`` file
do not have *their* ``.pth`` files run, so the project's editable install
stays inactive: ``tunedp`` is imported from the wheel, which the test checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return done


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_plans_and_searches_outside_the_repo(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    for project in (REPO, REPO / "examples" / "breast_cancer"):  # built with the project venv's setuptools
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
              "--wheel-dir", str(dist), str(project)], cwd=tmp_path)  # fmt: skip
    (wheel,) = dist.glob("tunedp-*.whl")
    (example,) = dist.glob("tunedp_example_breast_cancer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not any(name.startswith("trials/") for name in names)  # no generic top-level package
    assert {"tunedp/starters/digits.yaml", "tunedp/starters/csv.yaml", "tunedp/workloads/_digits.py"} <= set(names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    (torch_requirement,) = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: torch")]
    assert ">=" in torch_requirement and "<" in torch_requirement and "==" not in torch_requirement  # a range
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[tunedp.workloads]" in entry_points and "digits = tunedp.workloads.digits:WORKLOAD" in entry_points

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(purelib) / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: the .pth exposes the project venv, where tunedp is installed (editable) too.
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", str(wheel)])
    # The example workload package, installed the same way (no Python path tricks).
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", str(example)])

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TUNEDP_HOME=str(tmp_path / "home"), TUNEDP_TRACKING="0", RAY_USAGE_STATS_ENABLED="0")
    where = _run([str(python), "-c", "import tunedp; print(tunedp.__file__)"], cwd=work, env=env).stdout
    assert where.startswith(purelib), where
    tunedp = str(env_dir / "bin" / "tunedp")

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
