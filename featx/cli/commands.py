"""The ``featx`` commands: one ``cmd_*`` function per sub-command, each a thin wrapper.

The work happens in featx's modules, imported inside the command so ``featx --version`` and
``featx --help`` never start Keras. :mod:`featx.cli` builds the parser and dispatches here;
the ``featx cache ...`` commands are in :mod:`featx.cli.cache_commands`.
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from collections.abc import Sequence

from featx.cli.common import (
    _fit_kwargs,
    _keras,
    _names,
    _print_table,
    _resolve,
    _say,
    _verbose,
    _weights,
)
from featx.errors import CommandError
from featx.trust.outputs import check_outputs, write_output
from featx.utils.checks import close_matches


def _no_backbone_matches(pattern: str) -> str:
    """Why PATTERN found nothing, with the close names and how patterns match."""

    from featx.backbones import list_backbones

    word = pattern.lower().strip("*?[]")
    hint = close_matches(word, list_backbones(), cutoff=0.5)
    return (f"no backbone matches PATTERN {pattern!r}{hint}. A word matches anywhere in a name "
            "(`featx backbones resnet`), a glob matches whole names ('resnet*'); "
            "`featx backbones` lists them all")


def cmd_backbones(args) -> int:
    from dataclasses import asdict

    from featx.backbones import get_backbone_spec, list_backbones  # the table half: no Keras

    rows = [asdict(get_backbone_spec(name)) for name in list_backbones(args.pattern)]
    if not rows:
        raise CommandError(_no_backbone_matches(args.pattern))
    _print_table(rows, ["name", "input_size", "feature_dim", "weights_source", "offline"],
                 ["name", "input size", "feature dim", "weights source", "offline"])
    return 0


def cmd_extract(args) -> int:
    splits = _resolve(args)
    from featx.extract import extract_features

    rows = []
    for split, ds in splits.items():
        fs = extract_features(ds, args.backbone, verbose=_verbose(args), **_fit_kwargs(args))
        rows.append({"split": split, "images": len(fs), "dim": fs.features.shape[1],
                     "skipped": len(fs.skipped), "file": str(fs.path or "(in memory)")})
    _print_table(rows, ["split", "images", "dim", "skipped", "file"])
    return 0


def cmd_fit(args) -> int:
    check_outputs([args.out], param="--out")  # refused before the work, not after it
    splits = _resolve(args)
    from featx.estimators import TransferClassifier
    from featx.persist import save

    clf = TransferClassifier(args.backbone, head=args.head, cv=args.cv or None,
                             verbose=_verbose(args), **_fit_kwargs(args))
    clf.fit(splits["train"])
    test = splits["test"]
    acc = clf.score(test, test.label_names)
    path = save(clf, args.out)
    print(f"{args.backbone} + {args.head}: test accuracy {acc:.4f} on {len(test)} images")
    print(f"model: {path}")
    return 0


_PROBA_COLUMN = "probability"  # the top class's probability; then one proba_<class> per class


def _proba_columns(model) -> list[str]:
    return [_PROBA_COLUMN] + [f"proba_{c}" for c in model.classes_]


def _collect_images(items: Sequence[str]):
    """``(paths, skipped, passed_over)`` for IMAGES_OR_FOLDER: the image files named or found in
    folders (searched recursively, symlinked folders followed, each folder read once), the
    entries that cannot be read with why (a folder that cannot be listed, a folder met again
    through a symlink loop), and per extension the number of files in folders passed over for
    not having an image extension. Names starting with "." inside folders are passed over; a
    path given on the command line is always checked (a dangling symlink, a FIFO: skipped with
    the reason); a file found twice is predicted once. A path that does not exist at all is an
    error: a mistyped argument."""
    from collections import Counter

    from featx.data import IMAGE_EXTENSIONS

    paths: list[str] = []
    skipped: list[tuple[str, str]] = []
    passed_over: Counter = Counter()
    walked: set[tuple[int, int]] = set()  # (device, inode) of each folder read

    def cannot_list(exc: OSError) -> None:
        skipped.append((exc.filename, f"cannot list folder ({exc.strerror or exc})"))

    for item in items:
        if not os.path.isdir(item):
            if not os.path.lexists(item):
                raise FileNotFoundError(f"IMAGES_OR_FOLDER {item!r} does not exist")
            paths.append(item)
            continue
        for root, dirs, files in os.walk(item, onerror=cannot_list, followlinks=True):
            try:
                st = os.stat(root)
            except OSError as exc:
                cannot_list(exc)
                dirs[:] = []
                continue
            if (st.st_dev, st.st_ino) in walked:
                skipped.append((root, "folder already read (a symlink loop or a second link "
                                      "to it): not read again"))
                dirs[:] = []
                continue
            walked.add((st.st_dev, st.st_ino))
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in sorted(files):
                if f.startswith("."):
                    continue
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(os.path.join(root, f))
                else:
                    passed_over[os.path.splitext(f)[1].lower() or "(no extension)"] += 1
    if not paths and not skipped:
        raise CommandError(f"no image files found in {list(items)} (extensions: "
                           f"{', '.join(IMAGE_EXTENSIONS)})")
    return list(dict.fromkeys(paths)), skipped, passed_over  # a file named twice: once


def _has_proba(model) -> bool:
    """Whether the model gives class probabilities (``predict_proba`` and ``classes_``)."""
    try:
        return hasattr(model, "predict_proba") and hasattr(model, "classes_")
    except Exception:  # noqa: BLE001 - an available_if check that cannot decide: no
        return False


def _predict(model, paths: list[str], proba: bool):
    """``(labels, probabilities (n, k) or None)``: one pass through the model
    (``predict_proba`` when ``proba``, so a fine-tuned network is not run twice)."""
    import numpy as np

    if proba:
        p = np.asarray(model.predict_proba(paths))
        return np.asarray(model.classes_)[p.argmax(axis=1)], p
    return model.predict(paths), None


def _proba_wanted(args, model) -> bool:
    """``--proba`` / ``--no-proba`` / neither (on when the model has ``predict_proba``)."""
    has = _has_proba(model)
    if args.proba and not has:
        head = getattr(model, "head", None)
        what = f"head {head!r}" if isinstance(head, str) else type(model).__name__
        raise CommandError(
            f"--proba: the model ({what}) has no predict_proba, so it gives labels only; "
            "drop --proba, or refit with a head that has probabilities (e.g. `featx fit DATA "
            "--head logreg --out model.featx`; in Python, make_head('svm', proba=True))")
    return has if args.proba is None else bool(args.proba)


def _split_readable(paths: list[str], verify: str) -> tuple[list[str], list[tuple[str, str]]]:
    from featx.data import check_files

    reasons = check_files(paths, verify)
    return ([p for p, r in zip(paths, reasons, strict=True) if r is None],
            [(p, r) for p, r in zip(paths, reasons, strict=True) if r is not None])


def cmd_predict(args) -> int:
    import csv


    if not os.path.exists(args.model):
        raise FileNotFoundError(f"MODEL {args.model!r} does not exist; make one with "
                                "`featx fit DATA --head logreg --out model.featx`")
    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise FileNotFoundError(f"--out {args.out!r}: folder "
                                f"{os.path.dirname(os.path.abspath(args.out))!r} does not exist")
    if args.out:  # a file featx did not write there is refused now, before any work
        check_outputs([args.out], param="--out")
    _keras(args)
    from featx.backbones import Preprocess  # noqa: F401  (registers featx's Keras layers)
    from featx.data import display_path
    from featx.images import ImageError
    from featx.persist import UntrustedModelError, load

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load(args.model, trust=args.trust)
    except UntrustedModelError as exc:
        raise CommandError(f"{exc} From the command line: add --trust.") from None
    if args.cache is not None and "cache" in model.get_params(deep=False):
        model.set_params(cache=args.cache)
    for w in caught:  # load's warnings, reworded for the command line
        if "reset" in str(w.message) and args.cache is not None:
            continue  # the folder the user chose replaces the file's
        hint = " From the command line: --cache DIR, or --trust." if "reset" in str(w.message) \
            else ""
        warnings.warn(f"{w.message}{hint}", w.category, stacklevel=2)
    # Unreadable files are reported and left out, not allowed to sink the batch: a cheap header
    # check first; should a file that passed it still fail to decode, a full decode finds it.
    found, skipped, passed_over = _collect_images(args.images)
    paths, unreadable = _split_readable(found, "header")
    skipped += unreadable
    if passed_over:
        counts = ", ".join(f"{ext} {n}" for ext, n in sorted(passed_over.items()))
        _say(args, f"featx: passed over {sum(passed_over.values())} file(s) without an image "
                   f"extension ({counts})")
    want = _proba_wanted(args, model)
    try:
        labels, proba = _predict(model, paths, want) if paths else ([], None)
    except (ImageError, ValueError):
        paths, more = _split_readable(paths, "decode")
        if not more:
            raise
        skipped += more
        labels, proba = _predict(model, paths, want) if paths else ([], None)
    if skipped:  # names that are not UTF-8 shown as \xNN (display_path), here and in the CSV
        lines = "".join(f"\n  {display_path(p)}: {display_path(r)}" for p, r in skipped)
        print(f"featx: skipped {len(skipped)} file(s) that could not be read:{lines}",
              file=sys.stderr)
    if not paths:
        raise CommandError("no readable image to predict")
    out = io.StringIO() if args.out else sys.stdout
    w = csv.writer(out, lineterminator="\n")  # LF on every platform
    w.writerow(["path", "label"] + (_proba_columns(model) if proba is not None else []))
    for i, (p, y) in enumerate(zip(paths, labels, strict=True)):
        w.writerow([display_path(p), y]
                   + ([f"{v:.6f}" for v in (proba[i].max(), *proba[i])]
                      if proba is not None else []))
    if args.out:
        write_output(args.out, out.getvalue(), param="--out")
        _say(args, f"{len(paths)} predictions written to {args.out}")
    return 0


def cmd_export(args) -> int:
    if not os.path.exists(args.model):
        raise FileNotFoundError(f"MODEL {args.model!r} does not exist; make one with "
                                "`featx fit DATA --head logreg --out model.featx`")
    from featx.deploy.formats import FORMATS, output_paths

    if args.format in FORMATS:  # refused before loading the model (export checks it too)
        check_outputs(output_paths(FORMATS[args.format], args.out), param="--out")
    _keras(args)
    from featx.deploy import export
    from featx.persist import UntrustedModelError, load

    try:
        with warnings.catch_warnings():  # the folders a file names do not matter to an export
            warnings.filterwarnings("ignore", message=r"Loading path=.*: reset ")
            model = load(args.model, trust=args.trust)
    except UntrustedModelError as exc:
        raise CommandError(f"{exc} From the command line: add --trust.") from None
    path = export(model, args.out, format=args.format)
    _say(args, f"featx: wrote {path} ({args.format}; {FORMATS[args.format].runs_in})")
    return 0


def _ft_params(args, strategy: str, batch_size: int | None) -> dict:
    """FineTunedClassifier parameters from the options; one left at None is left out, so the
    estimator's own default applies (one default, in one place)."""
    given = dict(epochs=args.epochs, learning_rate=args.learning_rate, batch_size=batch_size,
                 validation_split=args.validation_split)
    return dict(strategy=strategy, warm_start=not args.no_warm_start,
                augment=None if args.no_augment else "default", random_state=args.seed,
                **{k: v for k, v in given.items() if v is not None})


def cmd_finetune(args) -> int:
    if args.out:  # refused before the work, not after it
        check_outputs([args.out], param="--out")
    splits = _resolve(args)
    from featx.finetune import FineTunedClassifier
    from featx.persist import save

    clf = FineTunedClassifier(args.backbone, weights=_weights(args.weights),
                              input_size=args.input_size, cache=args.cache, decoder=args.decoder,
                              validation_data=splits.get("validation"), verbose=_verbose(args),
                              **_ft_params(args, args.strategy, args.batch_size))
    _say(args, f"fine-tuning {args.backbone} ({args.strategy}) on {len(splits['train'])} images")
    clf.fit(splits["train"])
    # last epoch's numbers; "best" is what the phase kept (early stopping restores the best
    # weights), "reverted" marks a phase rolled back for ending worse than the one before
    rows = [{"phase": r.get("phase"), "epochs": r.get("epochs"),
             "loss": (r.get("loss") or [None])[-1], "val_loss": (r.get("val_loss") or [None])[-1],
             "val_accuracy": (r.get("val_accuracy") or [None])[-1], "best": r.get("best"),
             "reverted": "yes" if r.get("reverted") else ""} for r in clf.history_]
    _print_table(rows, ["phase", "epochs", "loss", "val_loss", "val_accuracy", "best",
                        "reverted"])
    test = splits["test"]
    acc = clf.score(test.paths, test.label_names)
    print(f"{args.backbone} fine-tuned ({args.strategy}): test accuracy {acc:.4f} on "
          f"{len(test)} images")
    if args.out:
        print(f"model: {save(clf, args.out)}")
    return 0


def cmd_compare(args) -> int:
    if args.out:  # refused before the work, not after it
        check_outputs([args.out], param="--out")
    splits = _resolve(args)
    from featx.comparison import DEFAULT_HEADS, compare
    from featx.evaluate import comparison_markdown

    strategies = _names(args.finetune) if args.finetune else []
    params = None
    if strategies:
        params = {k: v for k, v in _ft_params(args, "", args.ft_batch_size).items()
                  if k != "strategy"}
        if args.ft_input_size:
            params["input_size"] = args.ft_input_size
    table = compare(splits["train"], splits["test"], validation=splits.get("validation"),
                    backbone=args.backbone, weights=_weights(args.weights),
                    heads=_names(args.heads) if args.heads else DEFAULT_HEADS,
                    finetune=strategies, finetune_params=params,
                    cache=args.cache, input_size=args.input_size, decoder=args.decoder,
                    verbose=_verbose(args))
    print(comparison_markdown(table))  # the table `featx run` prints
    try:
        best = table.best()
        print(f"\nbest: {best['name']} (test accuracy {best['accuracy']:.3f})")
    except ValueError:
        pass
    if args.out:
        text = table.to_markdown() if args.out.endswith(".md") else table.to_json()
        write_output(args.out, text + "\n", param="--out")
        _say(args, f"table written to {args.out}")
    return 0


def cmd_run(args) -> int:
    from featx.pipeline import load_config, pipeline_path, run_pipeline

    _, builtin = pipeline_path(args.pipeline)  # raises the error naming close matches
    if builtin is not None:
        mine = f"{builtin}.toml"
        _say(args, f"featx: running the built-in pipeline {builtin!r}"
                   + (f" (not ./{mine}: `featx run {mine}` runs that)" if os.path.isfile(mine)
                      else f" (`featx init {builtin}` writes a copy to edit)"))
    load_config(args.pipeline, args.set or ())  # TOML, schema and names: before Keras
    # Without matplotlib the report is written without its plots, with one warning line that
    # says how to get them (featx.report.write_report).
    _keras(args)
    run_pipeline(args.pipeline, overrides=args.set or (), out=args.out,
                 verbose=_verbose(args), echo=print)
    return 0


def cmd_pipelines(args) -> int:
    from featx.pipeline import list_pipelines

    _print_table(list_pipelines(), ["name", "data", "description"])
    if not getattr(args, "quiet", False):
        print("\nrun one: featx run NAME; a copy to edit: featx init NAME [--out FILE]")
    return 0


def cmd_init(args) -> int:
    from featx.pipeline import copy_pipeline

    try:
        # featx's own unedited copy is replaced; a user's file or an edited copy is refused
        path = copy_pipeline(args.name, args.out, overwrite=True)
    except FileExistsError as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {path}: edit it, then `featx run {path}`")
    return 0


def cmd_advise(args) -> int:
    splits = _resolve(args)
    from featx.advise import advise

    advice = advise(splits, backbone=args.backbone, weights=_weights(args.weights),
                    input_size=args.input_size, cache=args.cache, seed=args.seed,
                    probe_per_class=args.probe_per_class, verbose=_verbose(args))
    advice.command = advice.command.replace("DATA", args.data)
    if args.json:
        import json

        print(json.dumps(advice.to_dict(), indent=2))
    else:
        print(advice)
    return 0


def cmd_show_augment(args) -> int:
    check_outputs([args.out], param="--out")  # refused before the work, not after it
    import numpy as np

    from featx.images import read_image
    from featx.report.plots import plot_augmentation

    train = _resolve(args)["train"]
    picks = []
    for k in range(len(train.class_names)):  # one image per class, first classes first
        idx = np.flatnonzero(train.labels == k)
        if len(idx):
            picks.append(int(idx[0]))
    picks = picks[: args.images]
    size = args.size if isinstance(args.size, tuple) else (args.size, args.size)
    images = np.stack([read_image(train.paths[i], size=size) for i in picks])
    path = plot_augmentation(images, args.out, n_variants=args.variants, seed=args.seed,
                             augment="default",
                             titles=[train.class_names[train.labels[i]] for i in picks])
    print(f"augmentation preview: {path}")
    return 0
