"""featx.export / `featx export`: every head of the table and a fine-tuned model round-trip
through a file that plain onnxruntime / LiteRT run in a subprocess importing neither featx nor
Keras, and agree with featx's own predict_proba / predict."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import MODEL

import featx
from featx.deploy import FORMATS, ExportError, check_format
from featx.deploy.formats import require_modules
from featx.images import read_image

#: The runner: a file, an input .npy, an output .npz; imports only numpy and the runtime.
RUNNER = textwrap.dedent("""
    import sys
    import numpy as np
    kind, model, inputs, out = sys.argv[1:]
    x = np.load(inputs)
    if kind == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        outputs = dict(zip(names, session.run(None, {"image": x})))
        meta = session.get_modelmeta().custom_metadata_map
    else:
        from ai_edge_litert.interpreter import Interpreter
        outputs = Interpreter(model_path=model).get_signature_runner()(image=x)
        meta = {}
    loaded = [m for m in ("featx", "keras", "tensorflow") if m in sys.modules]
    assert not loaded, f"the runner imported {loaded}"
    outputs = {k: np.asarray(v).astype(str) if np.asarray(v).dtype == object else np.asarray(v)
               for k, v in outputs.items()}
    np.savez(out, __meta__=np.asarray(repr(meta)), **outputs)
""")


def run_plain(tmp_path, kind: str, model_path, images: np.ndarray) -> dict:
    """Run an exported file in a fresh interpreter that imports neither featx nor Keras."""
    runner, inputs, out = tmp_path / "runner.py", tmp_path / "x.npy", tmp_path / "out.npz"
    runner.write_text(RUNNER)
    np.save(inputs, images)
    proc = subprocess.run([sys.executable, str(runner), kind, str(model_path), str(inputs),
                           str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def data():
    return featx.load_clothing_mini()


@pytest.fixture(scope="module")
def images(data):
    """30 test photos at the model's input size, resized as featx resizes them."""
    return np.stack([read_image(p, (32, 32)) for p in data["test"].paths[:30]])


@pytest.fixture(scope="module")
def features(data):
    """Train features once (the cache serves every head's fit)."""
    return featx.FeatureExtractor(**MODEL).fit().extract(data["train"])


def reference(clf, images):
    """featx's own outputs on ``images``: (label, probabilities or scores, output name)."""
    if hasattr(clf, "predict_proba"):
        return clf.predict(images), clf.predict_proba(images), "probabilities"
    return clf.predict(images), clf.decision_function(images), "scores"


# --------------------------------------------------------------------------- every head
@pytest.mark.parametrize("head", featx.list_heads())
def test_every_head_exports_to_onnx_and_agrees(head, features, images, tmp_path):
    clf = featx.TransferClassifier(head=head, random_state=0, **MODEL).fit(features)
    path = featx.export(clf, tmp_path / f"{head}.onnx")
    out = run_plain(tmp_path, "onnx", path, images)
    label, scores, name = reference(clf, images)
    assert set(out) == {"__meta__", "label", name}
    assert out[name].shape == scores.shape
    diff = float(np.abs(out[name] - scores).max())
    print(f"{head}: max |{name} diff| {diff:.2e}")
    assert diff < 1e-4
    np.testing.assert_array_equal(out["label"], label)  # the class names, as predict gives them
    meta = eval(str(out["__meta__"]))  # noqa: S307 - the repr of a dict of str written above
    assert json.loads(meta["featx.classes"]) == clf.classes_.tolist()
    assert meta["featx.head"] == head


def test_a_transfer_classifier_exports_with_the_graph_its_extraction_ran(features, tmp_path,
                                                                         monkeypatch):
    """The backbone in an exported ONNX file is the graph the forward ran on ONNX Runtime, read
    from the cache: exporting any head (skl2onnx's or a folded linear one) runs no second Keras
    export (about 10 s on 2 cores), and each file is still whole and right."""
    from featx.deploy import onnx_graph
    from featx.extract.config import ExtractorConfig
    from featx.extract.graphs import onnx_graph as forward_graph

    forward_graph(ExtractorConfig(**{k: v for k, v in MODEL.items() if k != "verbose"}))
    calls = []
    real = onnx_graph.export_onnx
    monkeypatch.setattr(onnx_graph, "export_onnx", lambda *a: calls.append(a) or real(*a))
    images = np.zeros((2, 32, 32, 3), np.uint8)
    for head in ("rf", "knn", "logreg"):
        clf = featx.TransferClassifier(head=head, random_state=0, **MODEL).fit(features)
        out = run_plain(tmp_path, "onnx", featx.export(clf, tmp_path / f"{head}.onnx"), images)
        np.testing.assert_allclose(out["probabilities"], clf.predict_proba(images), atol=1e-4)
    assert calls == []


@pytest.mark.parametrize("head", ["logreg", "linear_svm", "svm"])
def test_two_classes_give_predicts_shapes(head, features, images, tmp_path):
    """Binary heads: probabilities (N, 2), or decision_function's (N,) scores, and labels."""
    keep = np.isin(features.labels, [0, 1])
    X, y = features.features[keep], np.asarray(features.class_names)[features.labels[keep]]
    clf = featx.TransferClassifier(head=head, **MODEL).fit(X, y)
    out = run_plain(tmp_path, "onnx", featx.export(clf, tmp_path / "two.onnx"), images)
    label, scores, name = reference(clf, images)
    assert out[name].shape == scores.shape
    np.testing.assert_allclose(out[name], scores, atol=1e-4)
    np.testing.assert_array_equal(out["label"], label)


def test_pca_and_integer_labels_fold_into_one_dense(features, images, tmp_path):
    """logreg behind scale + PCA is still one Dense layer; integer classes come out as int64."""
    clf = featx.TransferClassifier(head="logreg", head_params={"pca": 8}, **MODEL)
    clf.fit(features.features, features.labels + 10)
    out = run_plain(tmp_path, "onnx", featx.export(clf, tmp_path / "pca.onnx"), images)
    assert out["label"].dtype == np.int64
    np.testing.assert_array_equal(out["label"], clf.predict(images))
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(images), atol=1e-4)


# --------------------------------------------------------------------------- feature norms
@pytest.mark.parametrize("options", [{"power": 0.5}, {"power": 0.5, "pca": 8, "whiten": True},
                                     {"power": 2.0, "normalize": True}, {"pca": 8, "whiten": True}])
@pytest.mark.parametrize("head", ["logreg", "knn"])
def test_signed_power_and_whitened_pca_convert_with_skl2onnx(head, options):
    """skl2onnx's graph of a head with featx's power step (Sign, Abs, Pow) and a whitened PCA
    agrees with scikit-learn on random features, negative ones included."""
    import onnxruntime

    from featx.deploy.onnx_graph import sklearn_to_onnx
    from featx.heads import make_head

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 12)).astype(np.float32) * 3
    y = np.arange(60) % 3
    model = make_head(head, random_state=0, **options).fit(X, y)
    graph = sklearn_to_onnx(model, X.shape[1])
    ops = {node.op_type for node in graph.graph.node}
    assert ({"Sign", "Abs", "Pow"} <= ops) == ("power" in options)
    session = onnxruntime.InferenceSession(graph.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    out = dict(zip(names, session.run(None, {"features": X}), strict=True))
    _, scores, _ = reference(model, X)
    np.testing.assert_allclose(out["probabilities"], scores, atol=1e-4)
    np.testing.assert_array_equal(out["label"], model.predict(X))


@pytest.mark.parametrize("params", [{"power": 0.5}, {"pca": 8, "whiten": True}])
def test_feature_norms_export_to_onnx_and_agree(params, features, images, tmp_path):
    """A model whose head has the power step exports to ONNX only (skl2onnx); a whitened PCA
    still folds into the Dense layer."""
    from featx.deploy.graphs import fold_linear_head

    clf = featx.TransferClassifier(head="logreg", head_params=params, **MODEL).fit(features)
    out = run_plain(tmp_path, "onnx", featx.export(clf, tmp_path / "norm.onnx"), images)
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(images), atol=1e-4)
    np.testing.assert_array_equal(out["label"], clf.predict(images))
    folded = fold_linear_head(clf.head_)
    if "power" in params:
        assert folded == ("its SignedPower step is not an affine map (affine steps: PCA, "
                          "StandardScaler)")
        with pytest.raises(ExportError, match=r"SignedPower.*formats that work for this model: "
                                              r"onnx"):
            featx.export(clf, tmp_path / "norm.tflite", format="litert")
    else:
        assert not isinstance(folded, str)


# --------------------------------------------------------------------------- other formats
@pytest.fixture(scope="module")
def logreg(features):
    return featx.TransferClassifier(head="logreg", **MODEL).fit(features)


def test_linear_head_exports_to_litert(logreg, images, tmp_path):
    path = featx.export(logreg, tmp_path / "m.tflite", format="litert")
    out = run_plain(tmp_path, "litert", path, images)
    (proba,) = [v for k, v in out.items() if k != "__meta__"]
    np.testing.assert_allclose(proba, logreg.predict_proba(images), atol=1e-4)
    labels = (tmp_path / "m.tflite.labels.txt").read_text().splitlines()
    assert labels == logreg.classes_.tolist()
    np.testing.assert_array_equal(np.asarray(labels)[proba.argmax(1)], logreg.predict(images))


def test_linear_head_exports_to_keras_and_saved_model(logreg, images, tmp_path):
    """Both load in Keras / TensorFlow without featx: featx's Preprocess layer is replaced by
    standard layers in the exported graph."""
    expected = logreg.predict_proba(images)
    featx.export(logreg, tmp_path / "m.keras", format="keras")
    sm = featx.export(logreg, tmp_path / "sm", format="saved_model")
    np.save(tmp_path / "x.npy", images)
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import keras
        import tensorflow as tf
        x = np.load("x.npy")
        a = keras.saving.load_model("m.keras").predict(x, verbose=0)
        served = tf.saved_model.load("sm")  # kept: its variables die with the object
        b = np.asarray(served.serve(tf.constant(x)))
        assert "featx" not in sys.modules
        np.save("out.npy", np.stack([a, b]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    keras_out, served = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(keras_out, expected, atol=1e-4)
    np.testing.assert_allclose(served, expected, atol=1e-4)
    assert (sm / "labels.txt").read_text().splitlines() == logreg.classes_.tolist()
    from featx.trust.outputs import owned

    assert owned(sm) and owned(tmp_path / "m.keras") and owned(tmp_path / "m.keras.labels.txt")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".featx-staging-")]


def test_nonlinear_head_names_the_formats_that_work(features, tmp_path):
    clf = featx.TransferClassifier(head="rf", n_jobs=None, **MODEL).fit(features)
    with pytest.raises(ExportError, match=r"format='litert'.*RandomForestClassifier.*"
                                          r"formats that work for this model: onnx"):
        featx.export(clf, tmp_path / "rf.tflite", format="litert")
    assert not list(tmp_path.iterdir())  # nothing half-written


# --------------------------------------------------------------------------- fine-tuned
def test_finetuned_round_trip_onnx_and_litert(data, images, tmp_path):
    clf = featx.FineTunedClassifier(
        backbone=MODEL["backbone"], weights=None, input_size=32, strategy="frozen", epochs=1,
        batch_size=32, augment=None, validation_split=0.0, early_stopping=False,
        random_state=0, run_eagerly=True).fit(data["train"].subset(np.arange(40)))
    expected = clf.predict_proba(images)
    out = run_plain(tmp_path, "onnx", featx.export(clf, tmp_path / "ft.onnx"), images)
    print(f"fine-tuned onnx: max |probabilities diff| "
          f"{np.abs(out['probabilities'] - expected).max():.2e}")
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-4)
    np.testing.assert_array_equal(out["label"], clf.predict(images))
    out = run_plain(tmp_path, "litert", featx.export(clf, tmp_path / "ft.tflite", "litert"),
                    images)
    (proba,) = [v for k, v in out.items() if k != "__meta__"]
    np.testing.assert_allclose(proba, expected, atol=1e-4)


# --------------------------------------------------------------------------- command, errors
def test_cli_export_writes_a_file_onnxruntime_runs(logreg, images, tmp_path, capsys):
    from featx.cli.main import main

    model = featx.save(logreg, tmp_path / "model.featx")
    assert main(["export", str(model), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "m.onnx" in capsys.readouterr().err + capsys.readouterr().out
    out = run_plain(tmp_path, "onnx", tmp_path / "m.onnx", images)
    np.testing.assert_array_equal(out["label"], logreg.predict(images))
    assert main(["export", str(model), "--format", "tflite", "--out", "x"]) == 2


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_an_export_never_replaces_what_featx_did_not_write(logreg, tmp_path, capsys, fmt):
    """A user's folder (with its contents) or file at the output path, or at the labels file
    beside it, is left as it is: refused before any export work, by the function and by
    `featx export`. featx's own earlier export is replaced (a SavedModel folder swapped whole);
    one edited since is not featx's any more."""
    from featx.cli.main import main
    from featx.deploy.formats import output_paths
    from featx.errors import OutputExistsError
    from featx.trust.outputs import owned

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "keep.jpg").write_bytes(b"mine")
    mine = tmp_path / f"notes{FORMATS[fmt].suffix}"
    mine.write_text("mine")
    for target in (folder, mine):
        with pytest.raises(OutputExistsError, match="featx did not write; featx leaves it as"):
            featx.export(logreg, target, format=fmt)
    model = featx.save(logreg, tmp_path / "model.featx")
    assert main(["export", str(model), "--format", fmt, "--out", str(folder)]) == 1
    assert f"--out={str(folder)!r} is a folder featx did not write" in capsys.readouterr().err
    assert (folder / "sub" / "keep.jpg").read_bytes() == b"mine" and mine.read_text() == "mine"
    ours = tmp_path / f"model{FORMATS[fmt].suffix or '_dir'}"
    paths = output_paths(FORMATS[fmt], ours)
    for user_file in paths[1:]:  # the labels file's name is taken: nothing is exported
        user_file.write_text("my labels")
        with pytest.raises(OutputExistsError, match=r"labels\.txt' is a file featx did not"):
            featx.export(logreg, ours, format=fmt)
        assert not ours.exists() and user_file.read_text() == "my labels"
        user_file.unlink()
    if fmt in ("litert", "saved_model"):  # the slow writers: their refusals above are what
        return  # this test is about (test_trust_outputs swaps featx's own folder whole)
    assert featx.export(logreg, ours, format=fmt) == ours and all(map(owned, paths))
    assert featx.export(logreg, ours, format=fmt) == ours and all(map(owned, paths))
    ours.write_bytes(ours.read_bytes() + b"\n")
    with pytest.raises(OutputExistsError, match="featx wrote that was changed since"):
        featx.export(logreg, ours, format=fmt)
    assert ours.read_bytes().endswith(b"\n")


def test_errors_name_what_is_wrong(logreg, tmp_path):
    with pytest.raises(ValueError, match=r"format must be one of \['onnx', 'litert', 'keras', "
                                         r"'saved_model'\], got 'tf'"):
        featx.export(logreg, tmp_path / "m", format="tf")
    with pytest.raises(TypeError, match="TransferClassifier, FineTunedClassifier; got str"):
        featx.export("model.featx", tmp_path / "m.onnx")
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        featx.export(featx.TransferClassifier(**MODEL), tmp_path / "m.onnx")
    missing = dataclasses.replace(FORMATS["litert"], modules=("featx_no_such_module",))
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'featx\[litert\]'"):
        require_modules(missing)
    changed = featx.TransferClassifier(head="logreg", **MODEL).fit(
        logreg._features(np.zeros((4, 32, 32, 3), np.uint8))[0], ["a", "b", "a", "b"])
    changed.feature_config_ = dict(logreg.feature_config_)
    changed.set_params(input_size=48)
    with pytest.raises(ValueError, match=r"input_size: \[32, 32\] -> \[48, 48\]"):
        featx.export(changed, tmp_path / "m.onnx")
    tta = featx.TransferClassifier(head="logreg", views=["none", "flip"], **MODEL)
    tta.set_params(views=None).fit(logreg._features(np.zeros((4, 32, 32, 3), np.uint8))[0],
                                   ["a", "b", "a", "b"])
    tta.set_params(views=["none", "flip"])
    with pytest.raises(ExportError, match=r"views=\['none', 'flip'\] averages the views"):
        featx.export(tta, tmp_path / "m.onnx")


def test_featx_export_is_the_function_after_the_package_is_imported():
    import featx.deploy  # noqa: F401

    assert featx.export.__module__ == "featx.deploy.api"
    assert check_format("keras").suffix == ".keras"


# --------------------------------------------------------------------------- real weights
def test_lite0_on_real_photos_agrees_with_predict(data, tmp_path):
    """EfficientNet-Lite0 (ImageNet weights) at 224 px + logreg on the bundled photos: the
    graph on the images featx reads agrees with predict; a caller's own plain resize moves a
    few labels (resizing, not the graph)."""
    from PIL import Image

    clf = featx.TransferClassifier("efficientnet_lite0", head="logreg").fit(data["train"])
    paths = data["test"].paths
    out = run_plain(tmp_path, "onnx", featx.export(clf, tmp_path / "lite0.onnx"),
                    np.stack([read_image(p, (224, 224)) for p in paths]))
    same = float(np.mean(out["label"] == clf.predict(paths)))
    diff = float(np.abs(out["probabilities"] - clf.predict_proba(paths)).max())
    plain = np.stack([np.asarray(Image.open(p).convert("RGB").resize((224, 224)))
                      for p in paths])
    naive = run_plain(tmp_path, "onnx", tmp_path / "lite0.onnx", plain)
    same_naive = float(np.mean(naive["label"] == clf.predict(paths)))
    print(f"clothing_mini test ({len(paths)} photos), Lite0 224 px + logreg: max |proba diff| "
          f"{diff:.2e}, labels identical {same:.1%} (featx.read_image inputs), "
          f"{same_naive:.1%} (PIL Image.resize inputs)")
    assert diff < 1e-4
    assert same >= 0.98
