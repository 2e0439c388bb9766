"""Raw images in, labels out (issue 27, item 1, for images): the released model preprocesses as training did.

An image workload's released model takes the images a user holds — 28 × 28
pixels 0..255 as Fashion-MNIST's idx files store them — and applies the
workload's declared ``preprocess`` itself: the function its loader calls
(scaling and the published standardisation; for ScatterNet, the scattering
transform). Nothing is trained here: each network gets fixed-seed weights,
saved as a search saves ``best_model.pt``, and every prediction is compared
with that network applied to the *loader's own* inputs for the same real
t10k images (the full loader for the CNN; for ScatterNet the function its
feature cache is built with, on those images only — the 60k cache is not
needed). ``tunedp predict`` runs as the console script on the real
``t10k-images-idx3-ubyte.gz``, on its uncompressed copy and on a ``.npy``.
"""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from tunedp.cli import main
from tunedp.release.model import PredictionError, RawArrayInput, ReleasedModel, raw_input_of
from tunedp.workloads import resolve_workload
from tunedp.workloads.fashion_mnist_scatternet_torch import features_of_images, scatter
from tunedp.workloads.fashion_mnist_torch import inputs_of_images
from tunedp.workloads.files import DatasetNotFoundError, fashion_mnist_files, read_idx

TUNEDP = str(Path(sys.executable).with_name("tunedp"))
ROWS = [0, 1, 2, 3, 17, 256, 4321, 9999]
"""Real t10k images (first rows, a middle, the last)."""
FLOAT32_RTOL = 1e-4
"""How far a float32 network's probabilities may move when another process computes them.

In this process, same kernels on the same inputs, predictions are compared bit
for bit. ``tunedp predict`` is a fresh process: oneDNN, MKL and the FFT pick
their blocking and summation order by CPU, thread count and memory alignment,
so float32 sums there may round differently (CI saw 1.7e-5 relative on half of
a ScatterNet batch, never here). A preprocessing mistake moves probabilities
by more than 10 % (transposed images: 13-108 %), which each test checks stays
far outside this tolerance.
"""


@pytest.fixture(scope="module")
def t10k() -> Path:
    try:
        return fashion_mnist_files().test_images
    except DatasetNotFoundError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def pixels(t10k: Path) -> npt.NDArray[np.uint8]:
    """The raw t10k images, uint8 (10000, 28, 28), as the idx file stores them."""
    return read_idx(t10k)  # type: ignore[return-value]


def release(folder: Path, workload: str, variant: str, seed: int) -> Path:
    """An output folder as a search leaves it (report.json naming workload and variant, best_model.pt)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.save(resolve_workload(workload).build_model(variant).state_dict(), folder / "best_model.pt")
    report = {
        "status": "completed",
        "config": {"workload": workload, "model": variant},
        "best": {"variant": variant, "model": str(folder / "best_model.pt")},
    }
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def softmax_of(folder: Path, inputs: torch.Tensor) -> npt.NDArray[np.float64]:
    """The released network applied to ``inputs`` directly: what the prediction must equal."""
    report = json.loads((folder / "report.json").read_text())
    network = resolve_workload(report["config"]["workload"]).build_model(report["best"]["variant"])
    network.load_state_dict(torch.load(folder / "best_model.pt", weights_only=True))
    network.eval()
    with torch.no_grad():
        return torch.softmax(network(inputs).double(), dim=1).numpy()


def loader_inputs(workload: str, pixels: npt.NDArray[np.uint8], rows: list[int]) -> torch.Tensor:
    """What the training fed the network for these t10k rows, from the workload's own loading code."""
    if workload == "fashion_mnist":
        return resolve_workload(workload).load().test.inputs[rows]
    return torch.from_numpy(next(scatter(pixels[rows])))  # the function the ScatterNet cache is built with


# ---------------------------------------------------------------------------- the declaration


@pytest.mark.parametrize(
    ("workload", "raw_shape", "preprocess"),
    [
        ("fashion_mnist", (28, 28), "tunedp.workloads.fashion_mnist_torch:inputs_of_images"),
        ("fashion_mnist_scatternet", (28, 28), "tunedp.workloads.fashion_mnist_scatternet_torch:features_of_images"),
        ("mnist_public", (28, 28), "tunedp.workloads.mnist_public_torch:inputs_of_images"),
        ("mnist_public_scatternet", (28, 28), "tunedp.workloads.fashion_mnist_scatternet_torch:features_of_images"),
        ("digits", (8, 8), "tunedp.workloads.digits_torch:inputs_of_images"),
    ],
)
def test_every_image_workload_takes_raw_pixels(workload: str, raw_shape: tuple[int, int], preprocess: str) -> None:
    declared = resolve_workload(workload)
    assert (declared.raw_input_shape, declared.preprocess) == (raw_shape, preprocess)
    raw = raw_input_of(workload)
    assert isinstance(raw, RawArrayInput) and raw.shape == raw_shape
    example = raw.example()  # the input example published with the model: all zeros, no row of any data
    assert example.shape == (1, *raw_shape) and not example.any()
    assert raw.encode(example).shape == (1, *declared.input_shape)


# ---------------------------------------------------------------------------- the model, in process


@pytest.mark.parametrize(("workload", "variant"), [("fashion_mnist", "cnn"), ("fashion_mnist_scatternet", "linear")])
def test_raw_images_are_preprocessed_exactly_as_the_loader_prepared_them(
    workload: str, variant: str, pixels: npt.NDArray[np.uint8], tmp_path: Path
) -> None:
    folder = release(tmp_path, workload, variant, seed=27)
    trained_on = loader_inputs(workload, pixels, ROWS)
    model = ReleasedModel.load(workload, None, folder / "best_model.pt")
    assert model.variant == variant and model.classes == tuple(str(k) for k in range(10))
    np.testing.assert_array_equal(model.raw_input.encode(pixels[ROWS]), trained_on.numpy())  # bit for bit

    expected = softmax_of(folder, trained_on)
    predicted = model.predict(pixels[ROWS])
    np.testing.assert_allclose(predicted.probabilities, expected, rtol=1e-12, atol=0)
    assert predicted.labels == [str(k) for k in expected.argmax(axis=1)]
    # Floats of the same pixels, and one image alone, give the same answer.
    np.testing.assert_allclose(model.predict(pixels[ROWS].astype(np.float64)).probabilities, expected, rtol=1e-12)
    np.testing.assert_allclose(model.predict(pixels[ROWS[-1]]).probabilities, expected[-1:], rtol=1e-6)


def test_images_of_another_shape_or_range_are_refused_in_one_line(pixels: npt.NDArray[np.uint8]) -> None:
    raw = raw_input_of("fashion_mnist")
    network_input = resolve_workload("fashion_mnist").load().test.inputs[:4].numpy()  # (4, 1, 28, 28), standardised
    with pytest.raises(PredictionError, match=r"shape \(4, 1, 28, 28\).*raw examples of shape \(28, 28\)"):
        raw.encode(network_input)
    with pytest.raises(PredictionError, match=r"^inputs hold values outside 0\.\.255.*not rescaled or standardised"):
        raw.encode(network_input[:, 0])  # the right shape, but standardised: negative values
    with pytest.raises(PredictionError, match=r"outside 0\.\.255"):
        raw.encode(pixels[:2].astype(np.float32) * 1.5)
    with pytest.raises(PredictionError, match=r"outside 0\.\.255"):
        raw.encode(np.where(pixels[:2] > 0, np.nan, 0.0))
    with pytest.raises(PredictionError, match=r"^inputs have shape \(2, 27, 28\)") as error:
        raw.encode(pixels[:2, :27])
    assert "\n" not in str(error.value)
    assert raw.encode(pixels[:0]).shape == (0, 1, 28, 28)  # no images: no predictions, not an error


# ---------------------------------------------------------------------------- tunedp predict, the console script


def _predict(folder: Path, rows: Path, output: Path) -> list[dict[str, str]]:
    done = subprocess.run(
        [TUNEDP, "predict", "--report", str(folder), str(rows), "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    with output.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _probabilities(written: list[dict[str, str]]) -> npt.NDArray[np.float64]:
    return np.array([[float(row[f"probability_{k}"]) for k in range(10)] for row in written])


def assert_scores_match(
    probabilities: npt.NDArray[np.float64],
    labels: list[str],
    expected: npt.NDArray[np.float64],
    mistake: npt.NDArray[np.float64],
) -> None:
    """Scores from another process equal ``expected`` up to float32 rounding; a wrong preprocessing's do not.

    Labels are compared where the top two expected probabilities are further
    apart than the tolerance lets both move, so that no rounding can swap them
    (a random network has near-ties: 110 of the 10 000 t10k images lie within 1e-4).
    """
    np.testing.assert_allclose(probabilities, expected, rtol=FLOAT32_RTOL, atol=1e-7)
    assert not np.allclose(mistake, expected, rtol=100 * FLOAT32_RTOL, atol=1e-7)
    ranked = np.sort(expected, axis=1)
    clear = ranked[:, -1] - ranked[:, -2] > 2 * (FLOAT32_RTOL * ranked[:, -1] + 1e-7)
    assert clear.mean() > 0.9
    assert np.array(labels)[clear].tolist() == [str(k) for k in expected.argmax(axis=1)[clear]]


def transposed(images: npt.NDArray[np.uint8]) -> torch.Tensor:
    """The images with rows and columns swapped: a plausible preprocessing mistake, fed to the same function."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 2, 1)))


@pytest.mark.parametrize("compressed", [True, False], ids=["idx.gz", "idx"])
def test_predict_scores_the_t10k_idx_file_as_fashion_mnist_ships_it(
    compressed: bool, t10k: Path, pixels: npt.NDArray[np.uint8], tmp_path: Path
) -> None:
    folder = release(tmp_path / "out", "fashion_mnist", "cnn", seed=3)
    rows = t10k
    if not compressed:
        rows = tmp_path / "t10k-images-idx3-ubyte"
        rows.write_bytes(gzip.decompress(t10k.read_bytes()))
    written = _predict(folder, rows, tmp_path / "predictions.csv")
    expected = softmax_of(folder, resolve_workload("fashion_mnist").load().test.inputs)  # all 10000 test images
    assert len(written) == 10000 and list(written[0]) == ["label", *(f"probability_{k}" for k in range(10))]
    mistake = softmax_of(folder, inputs_of_images(transposed(pixels)))
    assert_scores_match(_probabilities(written), [row["label"] for row in written], expected, mistake)


def test_predict_scores_raw_images_in_a_npy_with_the_scatternet_model(
    pixels: npt.NDArray[np.uint8], tmp_path: Path
) -> None:
    folder = release(tmp_path / "out", "fashion_mnist_scatternet", "cnn", seed=5)
    np.save(tmp_path / "images.npy", pixels[ROWS])
    written = _predict(folder, tmp_path / "images.npy", tmp_path / "predictions.csv")
    expected = softmax_of(folder, loader_inputs("fashion_mnist_scatternet", pixels, ROWS))
    mistake = softmax_of(folder, features_of_images(transposed(pixels[ROWS])))
    assert_scores_match(_probabilities(written), [row["label"] for row in written], expected, mistake)


def _refusal(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(["predict", *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_predict_refuses_files_that_are_not_raw_images_in_one_line(
    t10k: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = str(release(tmp_path / "out", "fashion_mnist", "cnn", seed=1))
    standardised = resolve_workload("fashion_mnist").load().test.inputs[:3].numpy()
    np.save(tmp_path / "network_inputs.npy", standardised)
    err = _refusal(["--report", folder, str(tmp_path / "network_inputs.npy")], capsys)
    assert "raw examples of shape (28, 28)" in err
    np.save(tmp_path / "standardised.npy", standardised[:, 0])
    assert "outside 0..255" in _refusal(["--report", folder, str(tmp_path / "standardised.npy")], capsys)
    labels = t10k.with_name("t10k-labels-idx1-ubyte.gz")  # an idx file, of labels: shape (10000,)
    assert "shape (10000,)" in _refusal(["--report", folder, str(labels)], capsys)
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    err = _refusal(["--report", folder, str(tmp_path / "rows.csv")], capsys)
    assert "cannot read" in err and "idx file" in err and ".npy" in err
    assert "no file" in _refusal(["--report", folder, str(tmp_path / "absent.npy")], capsys)


# ---------------------------------------------------------------------------- the MLflow pyfunc


def test_the_mlflow_pyfunc_takes_raw_images(pixels: npt.NDArray[np.uint8], tmp_path: Path) -> None:
    """Saved as tracking saves it ("models from code", recipe + state dict), loaded back, scored on raw pixels."""
    import mlflow.pyfunc

    from tunedp.observe.mlflow_model import _PYFUNC_CODE, PYFUNC_SCRIPT, pyfunc_signature

    folder = release(tmp_path / "out", "fashion_mnist_scatternet", "linear", seed=9)
    released = ReleasedModel.load("fashion_mnist_scatternet", "linear", folder / "best_model.pt")
    (tmp_path / "recipe.json").write_text(json.dumps(released.recipe()))
    (tmp_path / PYFUNC_SCRIPT).write_text(_PYFUNC_CODE)
    mlflow.pyfunc.save_model(
        tmp_path / "model",
        python_model=str(tmp_path / PYFUNC_SCRIPT),
        artifacts={"recipe": str(tmp_path / "recipe.json"), "weights": str(folder / "best_model.pt")},
        signature=pyfunc_signature(released),
        input_example=released.input_example(),
    )
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    (spec,) = model.metadata.get_input_schema().inputs
    assert list(spec.shape) == [-1, 28, 28] and spec.type == np.dtype(np.float32)  # raw pixels, not features
    scored = model.predict(pixels[ROWS].astype(np.float32))
    expected = softmax_of(folder, loader_inputs("fashion_mnist_scatternet", pixels, ROWS))
    np.testing.assert_allclose(scored[[f"probability_{k}" for k in range(10)]].to_numpy(), expected, rtol=1e-9)
    assert scored["label"].tolist() == [str(k) for k in expected.argmax(axis=1)]


def test_the_search_summary_names_the_raw_image_command_and_it_works_as_pasted(
    pixels: npt.NDArray[np.uint8], t10k: Path, tmp_path: Path
) -> None:
    """The console's load hint for an image release is a ``tunedp predict`` line that runs on raw images."""
    import shlex

    from tunedp.release.report import BestRelease, LedgerFigures, PrivacyFigures, SearchReport, human_summary

    folder = release(tmp_path / "out", "fashion_mnist", "cnn", seed=5)
    figures = dict.fromkeys(("charged_epsilon", "delta", "ledger_delta", "noise_multiplier", "trial_epsilon"), 1.0)
    figures |= dict.fromkeys(("search_epsilon", "naive_epsilon", "budget_epsilon"), 1.0)
    report = SearchReport(
        search_id="0" * 32,
        name="images",
        status="completed",
        started_at="",
        finished_at=None,
        duration_s=None,
        privacy=PrivacyFigures(
            mode="random", release="best", accountant="rdp", seeded=False, event={}, plan={}, **figures
        ),
        ledger=LedgerFigures(path="l", dataset="fashion_mnist", global_epsilon=3.0, spent_before=0.0, spent_after=1.0),
        best=BestRelease(
            point={},
            hyperparameters={},
            final_score=None,
            released_scores=(),
            test_metric=None,
            model=str(folder / "best_model.pt"),
            variant="cnn",
        ),
        config={"workload": "fashion_mnist", "model": "cnn"},
    )
    (line,) = [text for text in human_summary(report).splitlines() if text.startswith("model: ")]
    assert "raw 28×28 images" in line and "IDX file" in line
    command = line.split("images: ", 1)[1].split(" (or", 1)[0]
    np.save(tmp_path / "images.npy", pixels[ROWS])
    done = subprocess.run(
        [TUNEDP, *shlex.split(command)[1:]], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )  # the hint, as pasted in the folder the search ran in
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1 + len(ROWS)
