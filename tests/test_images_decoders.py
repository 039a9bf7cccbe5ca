"""The decoder table (``featx.images.DECODERS``): every decoder keeps featx's image conventions.

Each test runs for every decoder on real encoded files; ``opencv`` is skipped where OpenCV is not
installed (it is in the ``dev`` extra).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from featx.images import DECODERS, ImageError, decode_bytes

CAT = "tests/data/chelsea.jpg"  # 451 x 300 photo


@pytest.fixture(params=DECODERS)
def decoder(request):
    if request.param == "opencv":
        pytest.importorskip("cv2")
    return request.param


def _photo(h: int = 60, w: int = 90) -> np.ndarray:
    """A smooth, asymmetric image: JPEG keeps it close, and every flip or turn changes it."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([255 * x / w, 255 * y / h, 255 * (x + 2 * y) / (w + 2 * h)], -1).astype(
        np.uint8)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(decoder, orientation, image_bytes):
    arr = _photo()
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = image_bytes(arr, exif=exif, quality=95)
    want = decode_bytes(data)  # Pillow's ImageOps.exif_transpose, the reference
    got = decode_bytes(data, decoder=decoder)
    assert got.shape == want.shape == ((60, 90, 3) if orientation < 5 else (90, 60, 3))
    assert _mad(got, want) < 1.0
    assert got.dtype == np.uint8 and got.flags.c_contiguous


@pytest.mark.parametrize("size", [(224, 224), (100, 160), (40, 40)])
@pytest.mark.parametrize("resize", ["bilinear", "crop"])
def test_resized_photo_is_close_to_pillow(decoder, size, resize):
    """Reduced decoding (to 1/2, 1/4 below 113 px) and plain bilinear stay close to Pillow's
    antialiased resize on a real photo."""
    data = open(CAT, "rb").read()
    want = decode_bytes(data, size, resize)
    got = decode_bytes(data, size, resize, decoder=decoder)
    assert got.shape == (*size, 3) and got.dtype == np.uint8
    assert _mad(got, want) < 6.0, _mad(got, want)


def test_formats_and_modes_follow_featx_conventions(decoder, image_bytes):
    grey = image_bytes(_photo()[..., 0])
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :6, 3] = 255  # left half opaque red, right half fully transparent
    cmyk = image_bytes(size=(12, 10), colour=(255, 0, 0), mode="CMYK")  # (0, 255, 255, 0)
    out = decode_bytes(grey, decoder=decoder)
    assert out.shape == (60, 90, 3) and (out[..., 0] == out[..., 2]).all()
    alpha = decode_bytes(image_bytes(rgba, fmt="png"), decoder=decoder)
    assert alpha[:, :6].tolist() == [[[255, 0, 0]] * 6] * 10
    assert alpha[:, 6:].tolist() == [[[255, 255, 255]] * 6] * 10  # composited onto white
    red = decode_bytes(cmyk, (8, 8), decoder=decoder)
    assert red[..., 0].min() > 200 and red[..., 1:].max() < 60


def test_bad_bytes_are_image_errors(decoder, monkeypatch):
    data = open(CAT, "rb").read()
    with pytest.raises(ImageError, match="x.jpg: .*(truncated|cannot decode)"):
        decode_bytes(data[: len(data) // 2], (32, 32), decoder=decoder, source="x.jpg")
    with pytest.raises(ImageError, match="not an image file"):
        decode_bytes(b"plain text, not an image", decoder=decoder)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_bytes(data, (32, 32), decoder=decoder)


def test_unknown_decoder_names_the_parameter():
    with pytest.raises(ValueError, match=r"decoder must be one of .*'opencv'.*, got 'cv'"):
        decode_bytes(open(CAT, "rb").read(), decoder="cv")


def test_missing_opencv_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # what an environment without OpenCV does
    with pytest.raises(ImportError, match=r"pip install 'featx\[opencv\]'"):
        decode_bytes(open(CAT, "rb").read(), decoder="opencv")


def test_reduction_keeps_at_least_the_target():
    from featx.images.opencv import _scale

    assert _scale(451, 300, (224, 224), swapped=False) == 1  # 226x150 would be too small
    assert _scale(451, 300, (100, 160), swapped=False) == 2  # 226x150 >= 160x100
    assert _scale(451, 300, (40, 40), swapped=False) == 4  # 113x75; 57x38 would be too small
    assert _scale(4000, 3000, (224, 224), swapped=False) == 8
    # stored 300 wide x 451 high, shown turned: 100x160 (h, w) upright is 160x100 as stored
    assert _scale(300, 451, (100, 160), swapped=True) == 2
    assert _scale(300, 451, (100, 160), swapped=False) == 1
    assert _scale(451, 300, None, swapped=False) == 1


def test_decode_pool_runs_opencv_single_threaded_in_threads_and_processes(tmp_path, image_bytes):
    """Workers already run one decode per core: OpenCV's own threads are off inside the pool
    (and restored after), and process workers decode the same pixels as threads."""
    cv2 = pytest.importorskip("cv2")
    from featx.images import DecodePool

    paths = []
    for i in range(6):
        paths.append(str(tmp_path / f"{i}.jpg"))
        (tmp_path / f"{i}.jpg").write_bytes(image_bytes(np.roll(_photo(), 7 * i, axis=1)))
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        with DecodePool((24, 24), decoder="opencv", n_workers=2) as pool:
            assert cv2.getNumThreads() == 1
            threads = np.concatenate([ims for _, ims, _ in pool.imap(paths)])
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)
    with DecodePool((24, 24), decoder="opencv", n_workers=2, kind="process") as pool:
        processes = np.concatenate([ims for _, ims, _ in pool.imap(paths)])
    assert threads.shape == (6, 24, 24, 3) and np.array_equal(threads, processes)
    assert _mad(threads, np.stack([decode_bytes(open(p, "rb").read(), 24) for p in paths])) < 6


def test_data_after_the_image_is_kept_a_cut_file_is_not(decoder, tmp_path):
    """A Motion Photo appends a video after the JPEG's end marker: the image is whole and decodes
    as it would alone. A file cut short is still refused, by the cheap header check too."""
    from featx.data import ImageDataset
    from featx.images import check_image_bytes

    data = open(CAT, "rb").read()
    motion = data + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40  # 10 KiB "video"
    want = decode_bytes(data, (64, 64), decoder=decoder)
    assert np.array_equal(decode_bytes(motion, (64, 64), decoder=decoder), want)
    check_image_bytes(motion, source="motion.jpg")
    with pytest.raises(ImageError, match=r"cut.jpg: truncated JPEG file \(no end marker; "):
        check_image_bytes(data[:-5000], source="cut.jpg")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "motion.jpg").write_bytes(motion)
    (tmp_path / "a" / "cut.jpg").write_bytes(data[:-5000])
    with pytest.warns(UserWarning):
        ds = ImageDataset.from_directory(tmp_path)
    assert [p.rsplit("/", 1)[-1] for p in ds.paths] == ["motion.jpg"]
    assert [(p.rsplit("/", 1)[-1], "truncated" in r) for p, r in ds.skipped] == [("cut.jpg", True)]
