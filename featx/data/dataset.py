"""ImageDataset: a labelled list of image files, with everything it could not use in ``skipped``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from featx.data import from_containers
from featx.data.csvfile import is_missing_label, read_csv
from featx.data.files import (
    NESTED_FOLDER,
    SPLIT_NAMES,
    Verify,
    array_digest,
    check_files,
    display_path,
    loose_images,
    missing_path_error,
    scan_folder,
    warn_skipped,
)
from featx.errors import OutputExistsError
from featx.images import check_stores, is_url
from featx.trust.reader import confine, open_regular
from featx.trust.store import file_digest, open_artifact, write_artifact
from featx.utils.config import cache_dir

__all__ = [
    "ImageDataset",
]


#: The sealed list of the PNG files :meth:`ImageDataset.from_arrays` wrote in a folder, with the
#: SHA-256 of each (see :mod:`featx.trust.store`).
ARRAYS_MANIFEST = "arrays.json"


def _same_pixels(path: Path, image: np.ndarray) -> bool:
    """Whether the image file at ``path`` decodes to exactly ``image`` (written by featx before
    it recorded digests, or by anyone: the pixels are what matters)."""
    from PIL import Image

    want = image.squeeze(-1) if image.ndim == 3 and image.shape[-1] == 1 else image
    try:
        with open_regular(path) as f, Image.open(f) as im:
            got = np.asarray(im)
    except Exception:  # noqa: BLE001 - not an image Pillow reads: not the same
        return False
    return got.shape == want.shape and np.array_equal(got, want)


def _png_digest(path: Path) -> str | None:
    """SHA-256 of a regular file's bytes, ``None`` when it is missing or not a regular file."""
    try:
        return file_digest(path)[1]
    except OSError:
        return None


class ImageDataset:
    """A labelled list of image files.

    Parameters
    ----------
    paths : sequence of str
        Image file paths, in a stable order.
    labels : array-like of int
        ``labels[i]`` indexes ``class_names`` for ``paths[i]``.
    class_names : sequence of str
        Class names; index ``k`` names label ``k``.
    skipped : list of (path, reason), optional
        Files left out when the dataset was built.
    name : str, optional
        A short name used in cache file names and reports.

    Examples
    --------
    >>> ds = ImageDataset.from_paths(["a.jpg", "b.jpg", "c.jpg"], ["cat", "dog", "cat"],
    ...                              verify="none")
    >>> ds.class_names, ds.labels.tolist()
    (['cat', 'dog'], [0, 1, 0])
    >>> len(ds.subset([0, 2]))
    2
    """

    # Pickles and saved models name the class by its public path (stable as modules move).
    __module__ = "featx.data"

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int] | np.ndarray,
        class_names: Sequence[str],
        skipped: Sequence[tuple[str, str]] = (),
        name: str | None = None,
    ) -> None:
        self.paths = [os.fsdecode(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.class_names = [str(c) for c in class_names]
        self.skipped = [(os.fsdecode(p), str(r)) for p, r in skipped]
        self.name = name
        if len(self.paths) != len(self.labels):
            raise ValueError(
                f"paths and labels must have the same length, got {len(self.paths)} paths and "
                f"{len(self.labels)} labels"
            )
        bad = self.labels[(self.labels < 0) | (self.labels >= len(self.class_names))]
        if bad.size:
            raise ValueError(
                f"labels must index class_names (0..{len(self.class_names) - 1}), got {bad[:5]}"
            )

    # -- constructors ---------------------------------------------------------------------------
    @classmethod
    def from_directory(
        cls, root: str | os.PathLike, *, verify: Verify = "header", name: str | None = None
    ) -> ImageDataset | dict[str, ImageDataset]:
        """Read a class-folder tree (``root/<class>/<image>``); paths are stored absolute.

        When ``root`` holds ``train/``, ``validation/`` (or ``val/``) and/or ``test/`` folders, a
        dict of datasets keyed ``"train"``, ``"validation"``, ``"test"`` is returned, sharing one
        list of class names so labels mean the same in every split.

        Every entry of a class folder is either read or listed in ``skipped`` with why: a file
        that is not a usable image (any reason: not an image, cut short, over Pillow's
        decompression-bomb limit, unreadable), a dangling symlink, a symlink loop, a FIFO or
        device, a folder nested inside it (not read: images must be directly in their class
        folder); so is an empty class folder. Outside the class folders, image files (by
        extension), dangling symlinks, symlink loops and folders that are not splits are
        listed too; other files there (``README``, ``LICENSE``, a CSV) are passed over, as are
        names starting with ``"."`` anywhere (hidden files such as ``.DS_Store``). What lies
        outside the split folders is listed in the first split's ``skipped``.
        File names that are not UTF-8 are kept as :func:`os.fsdecode` gives them (they open as
        they are; :func:`display_path` prints them).

        Parameters
        ----------
        root : path or str
            The folder: a local path, or an fsspec URL of one (``s3://bucket/photos/``,
            ``https://host/photos/`` with directory listings, ``memory://photos``, an archive
            ``zip://::photos.zip`` or ``tar://::photos.tar``; ``pip install 'featx[remote]'``).
            Images behind a URL keep their URL as their path.
        verify : {"header", "decode", "none"}
            How hard to check each file: parse the header and look for the end marker (default,
            catches truncated files and decompression bombs cheaply), decode it fully, or trust
            the listing (only the extension is checked; later stages still report files they
            cannot decode).
        name : str, optional
            Dataset name (default: the folder's name; splits get ``-train`` etc. appended).
        """
        if is_url(os.fspath(root)):
            return from_containers.from_url_tree(cls, os.fspath(root), verify, name)
        root = Path(root)
        if not root.is_dir():
            raise missing_path_error("root", root)
        root = Path(os.path.abspath(root))  # absolute paths, symlinks kept as given
        subdirs, files, other = scan_folder(root)
        loose = loose_images(files) + other
        found: dict[str, Path] = {}
        for d in sorted(subdirs, key=lambda d: SPLIT_NAMES.get(d) != d):  # "validation" first
            split = SPLIT_NAMES.get(d)
            if split in found:
                loose.append((str(root / d), f"a second {split} folder: not read "
                                             f"({display_path(found[split])} is used)"))
            elif split is not None:
                found[split] = root / d
        splits = {s: found[s] for s in ("train", "validation", "test") if s in found}
        base = name or root.resolve().name
        if not splits:
            return cls._from_class_folders(root, subdirs, verify, base, loose)
        loose += [(str(root / d), "not a split folder (train, validation, val, test): not read")
                  for d in subdirs if d not in SPLIT_NAMES]
        scans = {s: scan_folder(folder) for s, folder in splits.items()}
        class_names = sorted({c for dirs, _, _ in scans.values() for c in dirs})
        out = {}
        for split, folder in splits.items():
            _, files, other = scans[split]
            extra = loose_images(files) + other
            if not out:
                extra = loose + extra
            out[split] = cls._from_class_folders(folder, class_names, verify, f"{base}-{split}",
                                                 extra)
        return out

    @classmethod
    def _from_class_folders(
        cls, root: Path, class_names: list[str], verify: Verify, name: str,
        loose: list[tuple[str, str]],
    ) -> ImageDataset:
        if not class_names:
            raise ValueError(
                f"root={display_path(root)!r} has no class sub-folders; expected "
                "root/<class>/<image files>"
            )
        candidates: list[tuple[str, int]] = []
        skipped = list(loose)
        reported: set[str] = set()
        for label, cls_name in enumerate(class_names):
            folder = root / cls_name
            try:
                nested, files, other = scan_folder(folder) if folder.is_dir() else ([], [], [])
            except OSError as exc:
                skipped.append((str(folder), f"cannot list class folder ({exc.strerror or exc})"))
                reported.add(str(folder))
                continue
            skipped += [(str(folder / d), NESTED_FOLDER) for d in nested] + other
            if not (nested or files or other):
                skipped.append((str(folder), "empty class folder: no files"))
                reported.add(str(folder))
            candidates.extend((f, label) for f in files)
        reasons = check_files([p for p, _ in candidates], verify)
        keep = [(p, y) for (p, y), r in zip(candidates, reasons, strict=True) if r is None]
        skipped += [(p, r) for (p, _), r in zip(candidates, reasons, strict=True) if r is not None]
        counts = np.bincount([y for _, y in keep], minlength=len(class_names))
        skipped += [
            (str(root / c), "class folder has no readable images")
            for c, n in zip(class_names, counts, strict=True)
            if n == 0 and str(root / c) not in reported
        ]
        warn_skipped(skipped, display_path(root))
        return cls([p for p, _ in keep], [y for _, y in keep], class_names, skipped, name)

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[str | os.PathLike],
        labels: Sequence,
        *,
        class_names: Sequence[str] | None = None,
        verify: Verify = "header",
        name: str | None = None,
        origin: str | os.PathLike | None = None,
        allow_local: bool = False,
    ) -> ImageDataset:
        """Build from parallel lists of paths and labels (strings, or ints with ``class_names``).

        Unusable files are moved to ``skipped`` together with their label, so the remaining
        pairs stay aligned. A path may be any fsspec URL (``s3://``, ``gs://``, ``https://``,
        ``memory://``, ``zip://a.jpg::photos.zip``; ``pip install 'featx[remote]'``), kept as
        given. Relative paths are made absolute against the current directory
        (``os.path.abspath``: symlinks are kept, not resolved); ``bytes`` paths are decoded with
        :func:`os.fsdecode`. A missing label (``None``, NaN, ``pd.NA``, a blank string) is
        refused with its positions: it would otherwise become a class of its own.

        ``origin``: where the list was read (a CSV's path or URL). A list read at a remote
        location names only remote images: local paths in it (``/etc/...``, ``file://...``)
        are skipped with the reason, unless ``allow_local=True``
        (:func:`featx.trust.reader.confine`).

        Examples
        --------
        >>> ds = ImageDataset.from_paths(["https://h/a.jpg", "/etc/hostname"], ["a", "b"],
        ...                              verify="none", origin="https://h/list.csv")
        >>> ds.paths, ds.skipped[0][1]
        (['https://h/a.jpg'], 'a local file named by a list read from a remote location: ...')
        """
        paths = [p if is_url(p) else os.path.abspath(p) for p in map(os.fsdecode, paths)]
        check_stores(paths)  # a missing s3fs or aiohttp is one error now, not one per image
        labels = list(labels)
        if len(paths) != len(labels):
            raise ValueError(
                f"paths and labels must have the same length, got {len(paths)} and {len(labels)}"
            )
        missing = [i for i, y in enumerate(labels) if is_missing_label(y)]
        if missing:
            shown = ", ".join(f"labels[{i}]={labels[i]!r}" for i in missing[:10])
            more = f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""
            raise ValueError(f"{len(missing)} label(s) are missing: {shown}{more}; every image "
                             "needs a class name (or drop those images)")
        if class_names is None:
            class_names = sorted({str(y) for y in labels})
            index = {c: i for i, c in enumerate(class_names)}
            codes = [index[str(y)] for y in labels]
        else:
            class_names = [str(c) for c in class_names]
            index = {c: i for i, c in enumerate(class_names)}
            codes = []
            for y in labels:
                if isinstance(y, int | np.integer) and 0 <= y < len(class_names):
                    codes.append(int(y))
                elif str(y) in index:
                    codes.append(index[str(y)])
                else:
                    raise ValueError(f"label {y!r} is not in class_names={class_names}")
        refused = ([confine(p, os.fspath(origin), allow_local=allow_local) for p in paths]
                   if origin is not None else [None] * len(paths))
        allowed = [i for i, r in enumerate(refused) if r is None]
        checked = dict(zip(allowed, check_files([paths[i] for i in allowed], verify),
                           strict=True))
        reasons = [refused[i] or checked[i] for i in range(len(paths))]
        keep = [i for i, r in enumerate(reasons) if r is None]
        skipped = [(paths[i], r) for i, r in enumerate(reasons) if r is not None]
        warn_skipped(skipped, name or "the given paths")
        return cls([paths[i] for i in keep], [codes[i] for i in keep], class_names, skipped, name)

    @classmethod
    def from_csv(
        cls,
        file: str | os.PathLike,
        *,
        path_column: str = "path",
        label_column: str = "label",
        root: str | os.PathLike | None = None,
        verify: Verify = "header",
        name: str | None = None,
        allow_local: bool = False,
    ) -> ImageDataset:
        """Read a CSV with one row per image; relative paths resolve against ``root`` (default:
        the CSV's folder) and are stored absolute. The CSV, ``root`` and the rows may be URLs
        (a relative row under a CSV at ``https://host/x/list.csv`` is ``https://host/x/<row>``).

        A CSV read from a remote location names only remote images: a row naming a local file
        (``/abs/path.jpg``, ``file:///...``, or a relative row under a local ``root``) is
        skipped with the reason unless ``allow_local=True`` (you trust the CSV).
        """
        rows = read_csv(file, path_column=path_column, label_column=label_column, root=root)
        stem = os.fspath(file).rsplit("::", 1)[-1].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        return cls.from_paths([r["path"] for r in rows], [r["label"] for r in rows],
                              verify=verify, name=name or stem, origin=file,
                              allow_local=allow_local)

    # Images inside other files (TFRecord, Parquet, WebDataset): featx/data/from_containers.py.
    from_tfrecords = classmethod(from_containers.from_tfrecords)
    from_parquet = classmethod(from_containers.from_parquet)
    from_webdataset = classmethod(from_containers.from_webdataset)

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray,
        labels: Sequence,
        *,
        class_names: Sequence[str] | None = None,
        name: str | None = None,
        directory: str | os.PathLike | None = None,
    ) -> ImageDataset:
        """Build from ``uint8`` arrays (N×H×W grey or N×H×W×C).

        The images are written once as PNG files under ``directory`` (default:
        ``<cache dir>/arrays/<content hash>/``), so every later stage sees files; a second call
        with the same arrays reuses them, each only while its bytes are those recorded in the
        folder's sealed manifest (``arrays.json``): a PNG changed since is written again from
        its array.

        Examples
        --------
        >>> import numpy as np, tempfile
        >>> x = np.zeros((4, 28, 28), dtype=np.uint8)
        >>> ds = ImageDataset.from_arrays(x, [0, 1, 0, 1], class_names=["a", "b"],
        ...                               directory=tempfile.mkdtemp())
        >>> len(ds), ds.class_names
        (4, ['a', 'b'])
        """
        from PIL import Image

        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(
                "images must be a uint8 array of shape (N, H, W) or (N, H, W, C), got "
                f"dtype={images.dtype} shape={images.shape}"
            )
        if images.ndim == 4 and images.shape[-1] not in (1, 3, 4):
            raise ValueError(f"images must have 1, 3 or 4 channels, got shape {images.shape}")
        digest = array_digest(images)
        folder = Path(directory) if directory is not None else cache_dir() / "arrays" / digest
        folder.mkdir(parents=True, exist_ok=True)
        width = max(5, len(str(len(images))))
        paths = [folder / f"{i:0{width}d}.png" for i in range(len(images))]
        # a second call reuses each PNG only while it has the digest the sealed manifest
        # recorded when featx wrote it: one changed since is written again from its array
        key = f"arrays-{digest}"
        manifest = folder / ARRAYS_MANIFEST
        known: dict[str, str] = {}
        if open_artifact(manifest, key) is not None:
            with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
                with open_regular(manifest) as f:
                    known = dict(json.loads(f.read(64 << 20))["files"])
        fresh = not known
        in_cache = folder.parent.name == "arrays"  # else a folder the caller named
        for path, img in zip(paths, images, strict=True):
            have = _png_digest(path)
            if have is not None and known.get(path.name) == have:
                continue
            if have is not None and _same_pixels(path, img):  # right, though not recorded
                known[path.name], fresh = have, True
                continue
            if have is not None and not in_cache:
                raise OutputExistsError(
                    f"directory={os.fspath(folder)!r} holds {path.name}, which is not the image "
                    "featx writes there for these arrays: featx does not replace a file it did "
                    "not write (choose an empty folder, or leave directory=None)")
            tmp = path.with_name(f".tmp-{path.name}")
            Image.fromarray(img.squeeze(-1) if img.ndim == 3 and img.shape[-1] == 1 else img
                            ).save(tmp, format="PNG")
            known[path.name] = _png_digest(tmp)
            os.replace(tmp, path)
            fresh = True
        if fresh:
            text = json.dumps({"files": known}, sort_keys=True)
            write_artifact(manifest, key, lambda tmp: tmp.write_text(text),
                           size=len(text) + 4096, kind="array images")
        return cls.from_paths(
            [str(p) for p in paths], labels, class_names=class_names, verify="none",
            name=name or f"arrays-{digest[:8]}",
        )

    # -- container protocol ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return zip(self.paths, self.labels.tolist(), strict=True)

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        return (
            f"<ImageDataset{name}: {len(self)} images, {len(self.class_names)} classes{skipped}>"
        )

    @property
    def label_names(self) -> np.ndarray:
        """The class name of every image (``class_names[labels]``)."""
        return np.asarray(self.class_names, dtype=object)[self.labels]

    def class_counts(self) -> dict[str, int]:
        """Images per class, in ``class_names`` order."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return dict(zip(self.class_names, counts.tolist(), strict=True))

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> ImageDataset:
        """A dataset of the given rows, with the same class names.

        Without a ``name`` it is named after this dataset and the rows it holds
        (``<name>-sub<6 hex>``), so it never shares a cache file with its parent or a sibling.
        """
        idx = np.asarray(indices, dtype=np.int64)
        if name is None and self.name:
            digest = hashlib.sha256(idx.tobytes()).hexdigest()[:6]
            name = f"{self.name}-sub{digest}"
        return ImageDataset([self.paths[i] for i in idx], self.labels[idx], self.class_names,
                            name=name)

    def split(
        self,
        test_size: float = 0.2,
        val_size: float | None = None,
        *,
        stratify: bool = True,
        random_state: int | None = 0,
    ) -> tuple[ImageDataset, ...]:
        """Split into ``(train, test)``, or ``(train, validation, test)`` given ``val_size``.

        Sizes are fractions of the whole dataset. Stratified by class by default, and reproducible
        for a given ``random_state``. The files this dataset skipped when it was built stay listed
        in the train part's ``skipped``, so they are reported once.

        Examples
        --------
        >>> ds = ImageDataset.from_paths([f"{i}.jpg" for i in range(20)],
        ...                              [i % 2 for i in range(20)],
        ...                              class_names=["a", "b"], verify="none")
        >>> train, test = ds.split(test_size=0.25)
        >>> len(train), len(test), test.class_counts()
        (15, 5, {'a': 3, 'b': 2})
        """
        from sklearn.model_selection import train_test_split

        for param, value in (("test_size", test_size), ("val_size", val_size)):
            if value is not None and not 0 < value < 1:
                raise ValueError(f"{param} must be a fraction in (0, 1), got {value!r}")
        if val_size is not None and test_size + val_size >= 1:
            raise ValueError(
                f"test_size + val_size must be < 1, got {test_size} + {val_size}"
            )
        if stratify:
            counts = np.bincount(self.labels, minlength=len(self.class_names))
            few = [self.class_names[k] for k in np.flatnonzero((counts > 0) & (counts < 2))]
            if few:
                raise ValueError(
                    f"cannot stratify the split: class(es) {few} have a single image (each class "
                    "needs at least 2, one on each side); add images, drop the class, or pass "
                    "stratify=False")
        idx = np.arange(len(self))
        strat = self.labels if stratify else None
        rest, test = train_test_split(
            idx, test_size=test_size, stratify=strat, random_state=random_state
        )
        base = self.name or "data"
        if val_size is None:
            return (
                self._with_skipped(self.subset(np.sort(rest), f"{base}-train")),
                self.subset(np.sort(test), f"{base}-test"),
            )
        strat = self.labels[rest] if stratify else None
        train, val = train_test_split(
            rest, test_size=val_size / (1 - test_size), stratify=strat, random_state=random_state
        )
        return (
            self._with_skipped(self.subset(np.sort(train), f"{base}-train")),
            self.subset(np.sort(val), f"{base}-validation"),
            self.subset(np.sort(test), f"{base}-test"),
        )

    def _with_skipped(self, part: ImageDataset) -> ImageDataset:
        part.skipped = list(self.skipped)
        return part
