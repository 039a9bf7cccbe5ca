"""The bounded reader (``featx.trust.reader``): every item read with a size cap, one deadline
and bounded retries, and lists that name only what they may.

Real components: real JPEGs, a 12 GB sparse file, real zip files, and a loopback HTTP server (in
a thread) whose paths are hostile on purpose: a body trickling a byte at a time, a
``Content-Length`` of 6 GB, an endless chunked body, 5xx then OK, 5xx forever, a body cut short.
Each test asserts that the good items are read, the bad ones are skipped with a reason, in
bounded time (generous time-outs only) and bounded memory (tracemalloc's peak, or the bytes the
server managed to send).
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import threading
import time
import tracemalloc
import warnings
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from featx import ImageDataset, config_context, get_config, set_config
from featx.cli.common import _resolve
from featx.cli.main import build_parser
from featx.data import SkippedImagesWarning
from featx.errors import ItemTimeoutError, ItemTooLargeError
from featx.images import DecodePool, hash_files, read_bytes
from featx.pipeline.run import _load_data
from featx.pipeline.schema import validate_config
from featx.sources import resolve_data
from featx.trust import reader
from featx.trust.reader import Budget, confine, is_local, max_item_bytes, read_capped

KiB, MiB, GiB = 2**10, 2**20, 2**30
MARGIN = 20.0  # seconds: bounded time is asserted with generous margins only


# -- a hostile loopback server ---------------------------------------------------------------
class _Hostile(BaseHTTPRequestHandler):
    """``/…/<kind>[-<n>]-<anything>``: ``ok`` serves ``files[path]`` (also any path in
    ``files``), ``trickle`` one byte per ``delay`` s of a 1000-byte body, ``huge`` a 6 GB
    ``Content-Length``, ``endless`` a chunked body without end, ``flaky<n>`` 500 for the first
    ``n`` GETs then OK, ``broken`` 500 always, ``short`` 10 of 1000 bytes then a closed
    connection, ``junk`` random bytes."""

    protocol_version = "HTTP/1.1"
    files: dict
    counts: Counter
    sent: Counter
    stop: threading.Event
    delay: float

    def log_message(self, *args) -> None:
        pass

    def _write(self, path: str, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client hung up: it stopped reading, as it should
            return False
        self.sent[path] += len(data)
        return True

    def _answer(self, path: str, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write(path, body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        self.counts[path] += 1
        kind, _, rest = path.rsplit("/", 1)[-1].partition("-")
        if path in self.files or kind == "ok":
            self._answer(path, self.files[path])
        elif kind == "trickle":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                if self.stop.wait(self.delay) or not self._write(path, b"x"):
                    break
        elif kind in ("huge", "endless"):
            self.send_response(200)
            if kind == "huge":
                self.send_header("Content-Length", str(6 * GiB))
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            block = b"\0" * (64 * KiB)
            framed = b"%x\r\n%s\r\n" % (len(block), block) if kind == "endless" else block
            while not self.stop.is_set() and self._write(path, framed):
                pass
            self.close_connection = True
        elif kind.startswith("flaky"):
            if self.counts[path] <= int(kind[5:] or 2):
                self._answer(path, b"try again", 500)
            else:
                self._answer(path, self.files[path.replace(kind, "ok")])
        elif kind == "broken":
            self._answer(path, b"down", 500)
        elif kind == "short":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self._write(path, b"x" * 10)
            self.close_connection = True
        elif kind == "junk":
            self._answer(path, random.Random(rest).randbytes(200))
        else:
            self._answer(path, b"no such thing", 404)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hangs up mid-answer is what these tests make happen


class Hostile:
    """``with Hostile(files) as url:`` the hostile server on 127.0.0.1; ``.counts`` holds the
    GETs per path, ``.sent`` the body bytes written per path."""

    def __init__(self, files: dict | None = None, delay: float = 0.5) -> None:
        self.files, self.counts, self.sent = dict(files or {}), Counter(), Counter()
        self.stop = threading.Event()
        handler = type("Handler", (_Hostile,), {"files": self.files, "counts": self.counts,
                                                "sent": self.sent, "stop": self.stop,
                                                "delay": delay})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Hostile:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def peak_memory():
    """``with peak_memory() as peak:`` ... ``peak()``: the most bytes Python held at once
    (every thread) inside the block, above what it held on entry."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = {}
    try:
        yield lambda: result["peak"]
    finally:
        result["peak"] = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()


@contextlib.contextmanager
def elapsed_at_most(seconds: float):
    start = time.monotonic()
    yield
    took = time.monotonic() - start
    assert took < seconds, f"took {took:.1f} s, more than {seconds} s"


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(reader, "_BACKOFF", 0.001)


@pytest.fixture(scope="module")
def jpegs(image_bytes):
    return [image_bytes(colour=(40 * i, 200 - 40 * i, 90)) for i in range(4)]


def skipped_dataset(urls, **kw) -> ImageDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedImagesWarning)
        return ImageDataset.from_paths(urls, ["a"] * len(urls), **kw)


# -- settings ---------------------------------------------------------------------------------
def test_settings_have_defaults_env_and_checks(monkeypatch):
    assert max_item_bytes() == reader.MAX_ITEM_BYTES == 256 * MiB
    assert get_config("item_timeout") == reader.ITEM_TIMEOUT == 60.0
    monkeypatch.setenv("FEATX_MAX_ITEM_BYTES", "5000")
    monkeypatch.setenv("FEATX_ITEM_TIMEOUT", "2.5")
    assert max_item_bytes() == 5000 and reader.item_timeout() == 2.5
    with config_context(max_item_bytes=7, item_timeout=1):
        assert Budget().limit == 7 and Budget().timeout == 1.0
    assert max_item_bytes() == 5000
    monkeypatch.setenv("FEATX_MAX_ITEM_BYTES", "256MB")
    with pytest.raises(ValueError, match=r"FEATX_MAX_ITEM_BYTES must be an int >= 1, got '256MB'"):
        max_item_bytes()
    with pytest.raises(ValueError, match=r"max_item_bytes must be an int >= 1, got 0"):
        set_config(max_item_bytes=0)
    with pytest.raises(ValueError, match=r"item_timeout must be a number >= 0.01, got '5'"):
        with config_context(item_timeout="5"):
            pass


# -- unbounded reads ----------------------------------------------------------------------------
def test_a_sparse_12_gb_jpg_is_refused_from_its_size_and_the_run_goes_on(tmp_path, jpegs):
    """The default cap (256 MiB); with ``verify="none"`` the dataset keeps it and extraction
    skips it: no MemoryError, the good image's features are there."""
    from helpers import counted, make_cache

    good, big = tmp_path / "good.jpg", tmp_path / "big.jpg"
    good.write_bytes(jpegs[0])
    with open(big, "wb") as f:
        f.write(jpegs[1])
    os.truncate(big, 12 * GiB)  # sparse: 12 GB to read, nothing on disk
    with peak_memory() as peak, elapsed_at_most(MARGIN):
        ds = skipped_dataset([str(good), str(big)])
        hashed = hash_files([str(good), str(big)])
    assert ds.paths == [str(good)]
    assert ds.skipped == [(str(big), "cannot read file (12 GiB, over the 256 MiB allowed per "
                                     "item (max_item_bytes, FEATX_MAX_ITEM_BYTES))")]
    assert hashed[0][1] is None and hashed[1] == (None, ds.skipped[0][1])
    assert peak() < 8 * MiB
    unchecked = ImageDataset.from_paths([str(good), str(big)], ["a", "b"], verify="none")
    fs, passes = counted(unchecked, make_cache(tmp_path / "cache"))
    assert passes == 1 and fs.paths == [str(good)]
    assert fs.skipped == ds.skipped


def test_a_zip_member_inflating_past_the_cap_is_refused_unread(tmp_path, jpegs):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/good.jpg", jpegs[0])
        z.writestr("a/bomb.jpg", jpegs[1] + b"\0" * (64 * MiB))  # 64 MB from ~70 KB
    assert archive.stat().st_size < MiB
    with config_context(max_item_bytes=MiB), peak_memory() as peak, elapsed_at_most(MARGIN):
        ds = skipped_dataset([f"zip://a/good.jpg::{archive}", f"zip://a/bomb.jpg::{archive}"])
        # the stream itself stops one byte past the cap, whatever the size says
        with zipfile.ZipFile(archive) as z, z.open("a/bomb.jpg") as member:
            with pytest.raises(ItemTooLargeError, match="more than 1 MiB"):
                read_capped(member, Budget(), "bomb.jpg")
            read_so_far = member.tell()
    assert ds.paths == [f"zip://a/good.jpg::{archive}"]
    assert ds.skipped == [(f"zip://a/bomb.jpg::{archive}", "cannot read file (64 MiB, over the "
                           "1 MiB allowed per item (max_item_bytes, FEATX_MAX_ITEM_BYTES))")]
    assert read_so_far == MiB + 1
    assert peak() < 16 * MiB


def test_an_endless_http_body_stops_after_the_cap_and_is_not_read_again(jpegs):
    with Hostile({"/ok-a.jpg": jpegs[0]}) as srv, config_context(max_item_bytes=256 * KiB):
        urls = [f"{srv.url}/ok-a.jpg", f"{srv.url}/endless-b.jpg"]
        with peak_memory() as peak, elapsed_at_most(MARGIN):
            ds = skipped_dataset(urls)
            with pytest.raises(ItemTooLargeError):
                read_bytes(urls[1])
    assert ds.paths == urls[:1]
    assert ds.skipped == [(urls[1], "cannot read file (more than 256 KiB, over the 256 KiB "
                                    "allowed per item (max_item_bytes, FEATX_MAX_ITEM_BYTES))")]
    assert srv.counts["/endless-b.jpg"] == 2  # once per read above: never retried
    assert peak() < 16 * MiB
    assert srv.sent["/endless-b.jpg"] < 2 * (256 * KiB + 16 * MiB)  # socket buffers at most


def test_a_6_gb_content_length_is_refused_at_once(jpegs):
    with Hostile({"/ok-a.jpg": jpegs[0]}) as srv:
        urls = [f"{srv.url}/ok-a.jpg", f"{srv.url}/huge-b.jpg"]
        with peak_memory() as peak, elapsed_at_most(MARGIN):
            ds = skipped_dataset(urls)  # the default cap
    assert ds.paths == urls[:1]
    assert ds.skipped == [(urls[1], "cannot read file (6 GiB, over the 256 MiB allowed per "
                                    "item (max_item_bytes, FEATX_MAX_ITEM_BYTES))")]
    assert srv.counts["/huge-b.jpg"] == 1
    assert peak() < 16 * MiB and srv.sent["/huge-b.jpg"] < 64 * MiB


def test_a_trickling_http_body_ends_at_the_deadline_not_minutes_later(jpegs):
    """A byte every half second (the issue's was every 2 s; its 20 minutes were the socket's
    default time-outs times four attempts): cut at the 1 s deadline, and not retried."""
    with Hostile({"/ok-a.jpg": jpegs[0]}, delay=0.5) as srv, config_context(item_timeout=1):
        urls = [f"{srv.url}/ok-a.jpg", f"{srv.url}/trickle-b.jpg"]
        with elapsed_at_most(1 + MARGIN):
            ds = skipped_dataset(urls)
    assert ds.paths == urls[:1]
    assert ds.skipped == [(urls[1], "cannot read file (not read within 1 s (item_timeout, "
                                    "FEATX_ITEM_TIMEOUT))")]
    assert srv.counts["/trickle-b.jpg"] == 1
    assert srv.sent["/trickle-b.jpg"] <= 1 / 0.5 + 1


def test_5xx_then_ok_is_read_and_5xx_forever_is_retried_a_bounded_number_of_times(
        jpegs, no_backoff):
    files = {"/ok-a.jpg": jpegs[0], "/ok-b.jpg": jpegs[1]}
    with Hostile(files) as srv:
        urls = [f"{srv.url}/flaky2-a.jpg", f"{srv.url}/broken-c.jpg", f"{srv.url}/ok-b.jpg"]
        with elapsed_at_most(MARGIN):
            ds = skipped_dataset(urls)
    assert ds.paths == [urls[0], urls[2]]
    assert ds.skipped == [(urls[1], "cannot read file (HTTP 500 Internal Server Error (after "
                                    "4 attempts))")]
    assert srv.counts["/flaky2-a.jpg"] == 3 and srv.counts["/broken-c.jpg"] == 4


def test_retries_stop_at_the_deadline(jpegs, monkeypatch):
    """A pause before the next attempt that would end past the deadline is not taken."""
    monkeypatch.setattr(reader, "_BACKOFF", 0.4)
    with Hostile() as srv, config_context(item_timeout=0.5), elapsed_at_most(0.5 + MARGIN):
        with pytest.raises(ItemTimeoutError, match=r"HTTP 500 .*\(after 2 attempts\); not read "
                                                   r"within 0.5 s"):
            read_bytes(f"{srv.url}/broken-a.jpg")
    assert srv.counts["/broken-a.jpg"] == 2


def test_a_ranged_read_keeps_only_its_range_from_a_server_that_ignores_range(jpegs):
    """Container records are read by byte range; a server that sends the whole file instead
    costs only the range in memory."""
    with Hostile({"/shard.tar": b"h" * 1000 + jpegs[0] + b"t" * 1000}) as srv:
        location = f"webdataset://{srv.url}/shard.tar#a.jpg@1000+{len(jpegs[0])}"
        assert read_bytes(location) == jpegs[0]
        with config_context(max_item_bytes=100), pytest.raises(ItemTooLargeError):
            read_bytes(location)  # the range is over the cap: refused before any GET
    assert srv.counts["/shard.tar"] == 1


def test_parquet_cells_and_row_groups_are_bounded(tmp_path, jpegs):
    """A cell over the cap is refused; a row group's image column (read whole, its rows then
    served from memory) is refused from the footer's size when over 4 x the cap."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from featx.images import container_location

    blob = random.Random(0).randbytes(300 * KiB)  # incompressible
    for cap, name in ((100 * KiB, "cells.parquet"), (50 * KiB, "group.parquet")):
        pq.write_table(pa.table({"image": [jpegs[0], blob], "label": ["a", "b"]}),
                       tmp_path / name)
        small, big = (container_location("parquet", str(tmp_path / name), "image", 0, row)
                      for row in (0, 1))
        with config_context(max_item_bytes=cap):
            if cap == 100 * KiB:
                assert read_bytes(small) == jpegs[0]
                with pytest.raises(ItemTooLargeError, match="over the 100 KiB allowed"):
                    read_bytes(big)
            else:
                for location in (small, big):
                    with pytest.raises(ItemTooLargeError, match=r"row group's 'image' column "
                                                                r"is \d+ bytes, over 4 x"):
                        read_bytes(location)


def test_a_decode_pool_skips_over_limit_items_and_reads_the_rest(tmp_path, jpegs):
    good = tmp_path / "good.jpg"
    good.write_bytes(jpegs[2])
    with Hostile() as srv, config_context(max_item_bytes=64 * KiB, item_timeout=1):
        paths = [str(good), f"{srv.url}/endless-x.jpg", f"{srv.url}/trickle-y.jpg",
                 f"{srv.url}/huge-z.jpg"]
        with DecodePool((8, 8), n_workers=2, chunk=2) as pool, elapsed_at_most(1 + MARGIN):
            out = list(pool.imap(paths))
    ids = [i for chunk_ids, _, _ in out for i in chunk_ids]
    reasons = [r for _, _, chunk_reasons in out for r in chunk_reasons]
    assert ids[0] is not None and ids[1:] == [None, None, None]
    assert reasons[0] is None
    assert ["more than 64 KiB" in reasons[1], "not read within 1 s" in reasons[2],
            "6 GiB, over the 64 KiB" in reasons[3]] == [True, True, True], reasons


def test_a_remote_csv_is_read_bounded_too():
    """The list itself is an input: an endless or trickling CSV ends with an error naming it."""
    with Hostile(delay=0.5) as srv, config_context(max_item_bytes=64 * KiB, item_timeout=1):
        with elapsed_at_most(1 + MARGIN):
            with pytest.raises(ItemTooLargeError, match=r"more than 64 KiB.*endless-list.csv"):
                ImageDataset.from_csv(f"{srv.url}/endless-list.csv")
            with pytest.raises(ItemTimeoutError, match=r"within 1 s.*trickle-list.csv"):
                ImageDataset.from_csv(f"{srv.url}/trickle-list.csv")
    assert srv.counts["/endless-list.csv"] == srv.counts["/trickle-list.csv"] == 1


# -- reaching outside -------------------------------------------------------------------------
@pytest.fixture
def local_photo(tmp_path, jpegs):
    """A real local JPEG (and a zip holding it) that a remote list must not make featx read."""
    secret = tmp_path / "private" / "secret.jpg"
    secret.parent.mkdir()
    secret.write_bytes(jpegs[3])
    with zipfile.ZipFile(tmp_path / "private" / "x.zip", "w") as z:
        z.writestr("s.jpg", jpegs[3])
    return secret


def test_a_remote_csv_naming_local_files_reads_none_of_them(local_photo, jpegs):
    zipped = f"zip://s.jpg::{local_photo.parent / 'x.zip'}"
    rows = ["path,label", "ok-a.jpg,red", f"{local_photo},red", f"file://{local_photo},blue",
            f"{zipped},blue"]
    files = {"/lists/list.csv": "\n".join(rows).encode() + b"\n", "/lists/ok-a.jpg": jpegs[0]}
    with Hostile(files) as srv:
        url = f"{srv.url}/lists/list.csv"
        with pytest.warns(SkippedImagesWarning, match="allow_local=True"):
            ds = ImageDataset.from_csv(url)
        assert ds.paths == [f"{srv.url}/lists/ok-a.jpg"]
        assert [p for p, _ in ds.skipped] == [str(local_photo), f"file://{local_photo}", zipped]
        assert {r for _, r in ds.skipped} == {
            "a local file named by a list read from a remote location: not read "
            "(allow_local=True, or --allow-local, reads it)"}
        trusted = ImageDataset.from_csv(url, allow_local=True)
    assert len(trusted.paths) == 4 and trusted.skipped == []


def test_a_remote_csv_with_splits_is_confined_too(local_photo, jpegs):
    rows = ["path,label,split", "ok-a.jpg,red,train", "ok-b.jpg,blue,train",
            f"{local_photo},red,train", "ok-c.jpg,red,test", "ok-d.jpg,blue,test"]
    files = {"/l/list.csv": "\n".join(rows).encode(), **{
        f"/l/ok-{c}.jpg": jpegs[i] for i, c in enumerate("abcd")}}
    with Hostile(files) as srv, warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedImagesWarning)
        splits = resolve_data(f"{srv.url}/l/list.csv")
        trusted = resolve_data(f"{srv.url}/l/list.csv", allow_local=True)
        # the same switch on the command line and in a pipeline
        args = build_parser().parse_args(["extract", f"{srv.url}/l/list.csv", "--allow-local"])
        on_cli = _resolve(args)
        piped = _load_data(validate_config({"data": {"path": f"{srv.url}/l/list.csv",
                                                    "allow_local": True}}))
    assert len(splits["train"]) == 2 and len(splits["test"]) == 2
    assert [p for p, r in splits["train"].skipped if "allow_local" in r] == [str(local_photo)]
    assert len(trusted["train"]) == len(on_cli["train"]) == len(piped["train"]) == 3


def test_a_local_csv_still_names_local_files(tmp_path, jpegs):
    (tmp_path / "a.jpg").write_bytes(jpegs[0])
    (tmp_path / "list.csv").write_text(f"path,label\na.jpg,x\n{tmp_path / 'a.jpg'},y\n")
    assert len(ImageDataset.from_csv(tmp_path / "list.csv").paths) == 2


def test_parquet_path_cells_stay_inside_the_parquet_folder(tmp_path, local_photo, jpegs):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "in.jpg").write_bytes(jpegs[0])
    cells = ["sub/in.jpg", "sub/../sub/in.jpg", "../private/secret.jpg", str(local_photo),
             f"file://{local_photo}"]
    table = pa.table({"image": [{"bytes": None, "path": c} for c in cells],
                      "label": ["a", "a", "b", "b", "b"]})
    pq.write_table(table, folder / "train.parquet")
    with pytest.warns(SkippedImagesWarning, match="a container is read only inside itself"):
        ds = ImageDataset.from_parquet(folder / "train.parquet")
    assert ds.paths == [str(folder / "sub" / "in.jpg"), str(folder / "sub/../sub/in.jpg")]
    assert len(ds.skipped) == 3 and all("allow_local=True" in r for _, r in ds.skipped)
    assert "'../private/secret.jpg' leaves the folder" in ds.skipped[0][1]
    trusted = ImageDataset.from_parquet(folder / "train.parquet", allow_local=True)
    assert len(trusted.paths) == 5 and trusted.skipped == []


def test_the_rule_for_every_kind_of_location():
    remote = "https://h/d/list.csv"
    for local in ("/etc/hostname", "file:///etc/hostname", "zip://a.jpg::/tmp/x.zip",
                  "memory://x.jpg", "tfrecord:///tmp/t.tfrecord#0@12+5",
                  "simplecache::file:///etc/hostname", "LOCAL:///etc/hostname"):
        assert is_local(local), local
        assert confine(local, remote) is not None, local
        assert confine(local, remote, allow_local=True) is None
        assert confine(local, "/data/list.csv") is None  # a local list is the user's own
    for far in ("https://h/a.jpg", "s3://b/a.jpg", "zip://a.jpg::https://h/x.zip",
                "webdataset://gs://b/s.tar#a.jpg@0+5", "simplecache::https://h/a.jpg"):
        assert not is_local(far), far
        assert confine(far, remote) is None
    parquet = "https://h/d/train.parquet"  # a container's cells, as written
    assert confine("sub/a.jpg", parquet, contained=True) is None
    assert confine("https://elsewhere/a.jpg", parquet, contained=True) is None
    for outside in ("/etc/hostname", "../a.jpg", "sub/../../a.jpg", "file:///etc/hostname"):
        assert "a container is read only inside itself" in confine(outside, parquet,
                                                                      contained=True), outside
        assert "inside itself" in confine(outside, "/data/train.parquet", contained=True)
        assert confine(outside, parquet, contained=True, allow_local=True) is None


# -- fuzz -------------------------------------------------------------------------------------
KINDS = ("ok", "ok", "trickle", "huge", "endless", "flaky1", "flaky2", "broken", "short", "junk",
         "missing")
GOOD = ("ok", "flaky1", "flaky2")


@pytest.mark.filterwarnings("ignore::featx.errors.SkippedImagesWarning")
def test_fuzz_a_slow_huge_endless_server(jpegs, no_backoff):
    """100 seeded trials of 4 URLs each, drawn from every hostile answer: each trial's dataset
    keeps exactly its good URLs and skips each bad one with a reason; every trial ends within
    its deadline (+ margin) and the whole run's memory stays bounded. Trials run 8 at a time
    (their slow items wait on the deadline together)."""
    files = {"/warm/ok-0.jpg": jpegs[0]}
    trials = []
    for seed in range(100):
        rng = random.Random(seed)
        urls = []
        for i in range(4):
            kind = rng.choice(KINDS)
            path = f"/fuzz/{seed}/{kind}-{i}.jpg"
            files[path.replace(kind, "ok")] = jpegs[rng.randrange(len(jpegs))]
            urls.append((path, kind))
        trials.append(urls)
    cap, deadline = 128 * KiB, 1.0  # a good item (a few 500s first) takes milliseconds
    with Hostile(files, delay=0.05) as srv:
        assert read_bytes(f"{srv.url}/warm/ok-0.jpg") == jpegs[0]  # the HTTP client started
        def trial(urls):
            start = time.monotonic()
            ds = ImageDataset.from_paths([srv.url + p for p, _ in urls], ["a"] * len(urls))
            return ds, time.monotonic() - start

        with config_context(max_item_bytes=cap, item_timeout=deadline), peak_memory() as peak:
            with ThreadPoolExecutor(8) as pool, elapsed_at_most(100 * deadline + MARGIN):
                results = list(pool.map(trial, trials))
    for urls, (ds, took) in zip(trials, results, strict=True):
        good = [srv.url + p for p, kind in urls if kind in GOOD]
        assert ds.paths == good, (urls, ds.skipped)
        assert sorted(p for p, _ in ds.skipped) == sorted(
            srv.url + p for p, kind in urls if kind not in GOOD)
        assert all(reason for _, reason in ds.skipped)
        assert took < deadline * 4 + MARGIN  # the 4 items of a trial may wait in turn
    reasons = Counter(kind for urls, (ds, _) in zip(trials, results, strict=True)
                      for (p, kind), (_, r) in zip([u for u in urls if u[1] not in GOOD],
                                                   ds.skipped, strict=True))
    assert {"trickle", "huge", "endless", "broken", "short", "junk", "missing"} <= set(reasons)
    assert peak() < 64 * MiB
    endless = [n for p, n in srv.sent.items() if "/endless-" in p]
    assert max(endless) < cap + 32 * MiB  # each cut after the cap (socket buffers aside)
    assert all(n == 1 for p, n in srv.counts.items() if "/trickle-" in p or "/huge-" in p
               or "/endless-" in p)


def test_a_file_url_is_a_local_read(tmp_path, jpegs):
    """``file://`` goes through the same checks as a path: a FIFO is refused, never waited on."""
    (tmp_path / "a.jpg").write_bytes(jpegs[0])
    os.mkfifo(tmp_path / "fifo.jpg")
    with elapsed_at_most(MARGIN):
        ds = skipped_dataset([f"file://{tmp_path}/a.jpg", f"file://{tmp_path}/fifo.jpg"])
    assert ds.paths == [f"file://{tmp_path}/a.jpg"]
    assert ds.skipped == [(f"file://{tmp_path}/fifo.jpg",
                           "cannot read file (a FIFO, not a regular file)")]


def test_read_capped_stops_one_byte_past_the_cap():
    stream = io.BytesIO(b"x" * (3 * MiB))
    with pytest.raises(ItemTooLargeError, match="more than 1 MiB"):
        read_capped(stream, Budget(limit=MiB, timeout=MARGIN), "s")
    assert stream.tell() == MiB + 1
    assert read_capped(io.BytesIO(b"abc"), Budget(limit=3, timeout=MARGIN), "s") == b"abc"
