"""Hostile and broken images: each gets a status and a placeholder, never an exception."""
import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from lib import images


def png_header(width, height):
    """A PNG that declares a huge canvas in a few bytes (a decompression bomb's header)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def jpeg(size=(120, 90)):
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("make, status", [
    (lambda p: p.write_bytes(jpeg()), "ok"),
    (lambda p: None, "missing"),
    (lambda p: p.mkdir(), "missing"),                                  # a folder named like an image
    (lambda p: p.write_bytes(b""), "corrupt"),
    (lambda p: p.write_bytes(b"\xff\xd8\xff garbage"), "corrupt"),
    (lambda p: p.write_bytes(b"#!/bin/sh\nrm -rf /\n"), "corrupt"),
    (lambda p: p.write_bytes(jpeg()[:300]), "corrupt"),                 # truncated JPEG
    (lambda p: p.write_bytes(png_header(9000, 9000)), "too_large"),    # 81 Mpx: over our cap
    (lambda p: p.write_bytes(png_header(20000, 20000)), "too_large"),  # 400 Mpx: Pillow's own bomb error
    (lambda p: p.write_bytes(png_header(2**31 - 1, 1)), "too_large"),
])
def test_every_image_gets_a_status_and_never_raises(tmp_path, make, status):
    p = tmp_path / "img.jpg"
    make(p)
    got, jpeg_bytes, rgb = images.make_thumbnail(str(p))
    assert got == status
    assert (jpeg_bytes is not None) == (status == "ok") and (rgb is not None) == (status == "ok")
    if status == "ok":
        assert Image.open(io.BytesIO(jpeg_bytes)).size[0] <= images.THUMB_SIZE


def test_a_real_decompression_bomb_is_refused_without_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    Image.new("1", (10000, 6000)).save(p)  # 60 Mpx of zeros: a few kB on disk
    assert os.path.getsize(p) < 200_000
    assert images.make_thumbnail(str(p))[0] == "too_large"


def test_symlink_out_of_the_root_is_never_opened(tmp_path):
    root = tmp_path / "raw_data"
    (root / "1" / "00001").mkdir(parents=True)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(jpeg())
    os.symlink(outside, root / "1" / "00001" / "x.jpg")
    batch = list(images.iter_thumbnails(root, ["1/00001/x.jpg"], n_jobs=1))
    assert [b[0] for b in batch[0]] == ["outside_root"]


def test_placeholder_is_a_jpeg():
    assert Image.open(io.BytesIO(images.placeholder())).format == "JPEG"


def test_workers_never_run_the_parents_main_script(tmp_path, monkeypatch):
    """Under Streamlit or AppTest ``__main__`` is a page script; a spawned worker must not run it."""
    import sys
    import types

    from lib import embed

    script = tmp_path / "page.py"
    script.write_text("raise SystemExit('the page script ran in a worker')\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    for i in range(4):
        Image.new("RGB", (40, 30), (i * 60, 0, 0)).save(tmp_path / f"{i}.jpg")
    got = [b for batch in images.iter_thumbnails(tmp_path, [f"{i}.jpg" for i in range(4)], n_jobs=2, batch=1)
           for b in batch]
    assert [s for s, _, _ in got] == ["ok"] * 4
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(60, 4)).astype(np.float32)
    idx = (np.arange(60)[:, None] + np.arange(1, 6)) % 60  # a ring: every row's 5 next rows
    with embed.MapWorker() as maps:
        maps.submit("m", Z, idx.astype(np.int64), np.ones(idx.shape, np.float32), 10, 10)
        assert maps.result("m")[0].shape == (60, 2)
