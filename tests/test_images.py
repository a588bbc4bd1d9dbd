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


@pytest.mark.parametrize("decoders", [images.DEFAULT_DECODERS, ("pillow",)])
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
def test_every_image_gets_a_status_and_never_raises(tmp_path, make, status, decoders):
    p = tmp_path / "img.jpg"
    make(p)
    got, jpeg_bytes, rgb = images.make_thumbnail(str(p), decoders=decoders)
    assert got == status
    assert (jpeg_bytes is not None) == (status == "ok") and (rgb is not None) == (status == "ok")
    if status == "ok":
        assert Image.open(io.BytesIO(jpeg_bytes)).size[0] <= images.THUMB_SIZE


def photo(size, mode="RGB", fmt="JPEG", seed=0):
    """A car-like crop: a checkered, graded scene (edges, where decoders differ) around a painted body."""
    h, w = size[1], size[0]
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // w, y * 255 // h, ((x // 16 + y // 16) % 2) * 200 + 30], -1)
    noise = np.random.default_rng(seed).integers(-8, 9, (h, w, 3))
    body = (y > 0.4 * h) & (y < 0.85 * h) & (x > 0.1 * w) & (x < 0.9 * w)
    a[body] = np.array([40, 90, 170]) + noise[body]
    im = Image.fromarray(a.clip(0, 255).astype(np.uint8)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.mark.parametrize("size, mode, fmt", [
    ((192, 144), "RGB", "JPEG"),   # the demo's crops: libjpeg-turbo decodes at 3/4, then the box
    ((320, 240), "RGB", "JPEG"),   # 1/2, then the box
    ((1000, 300), "RGB", "JPEG"),  # wide: the box is filled by width
    ((90, 200), "RGB", "JPEG"),    # tall and smaller than the box: never enlarged
    ((320, 240), "L", "JPEG"),     # greyscale JPEG: three channels all the same
    ((320, 240), "CMYK", "JPEG"),  # CMYK (Adobe's inverted): libjpeg-turbo converts it as Pillow does
    ((320, 240), "RGB", "PNG"),    # not a JPEG: Pillow
])
def test_the_fast_decoder_makes_pillows_thumbnail(tmp_path, size, mode, fmt):
    """simplejpeg (the loader's first decoder) and Pillow give the same box and nearly the same pixels."""
    p = tmp_path / "img"
    p.write_bytes(photo(size, mode, fmt))
    if fmt == "JPEG":  # the fast path itself made it (not a silent fall back to Pillow)
        assert images.decode_simplejpeg(p.read_bytes(), images.THUMB_SIZE).shape[2] == 3
    else:
        with pytest.raises(ValueError):
            images.decode_simplejpeg(p.read_bytes(), images.THUMB_SIZE)
    fast = images.make_thumbnail(str(p))
    slow = images.make_thumbnail(str(p), decoders=("pillow",))
    assert fast[0] == slow[0] == "ok"
    a, b = (np.asarray(Image.open(io.BytesIO(t[1])).convert("RGB"), dtype=np.float64) for t in (fast, slow))
    assert a.shape == b.shape and max(a.shape[:2]) == min(images.THUMB_SIZE, max(size))
    assert np.abs(a - b).mean() < 6  # two decoders and resamplings of the same picture, not the same bytes
    assert np.abs(np.subtract(fast[2], slow[2])).max() < 20  # the body colour too


def test_a_jpeg_simplejpeg_cannot_read_is_made_by_pillow(tmp_path, monkeypatch):
    p = tmp_path / "img.jpg"
    p.write_bytes(photo((320, 240)))

    def refuse(data, size):
        raise ValueError("strict decoder refused it")
    monkeypatch.setitem(images.DECODERS, "simplejpeg", refuse)
    got, jpeg_bytes, rgb = images.make_thumbnail(str(p))
    assert got == "ok" and Image.open(io.BytesIO(jpeg_bytes)).size == (128, 96)


def test_a_file_over_the_byte_cap_is_refused_unread(tmp_path, monkeypatch):
    p = tmp_path / "img.jpg"
    p.write_bytes(photo((320, 240)))
    monkeypatch.setattr(images, "MAX_FILE_BYTES", p.stat().st_size - 1)
    assert images.make_thumbnail(str(p)) == ("too_large", None, None)


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


def test_a_batch_asks_the_kernel_for_its_files_before_decoding_and_keeps_their_order(tmp_path, monkeypatch):
    names = []
    for i in range(8):
        (tmp_path / f"{i}.jpg").write_bytes(jpeg((60 + 8 * i, 45)))
        names.append(f"{i}.jpg")
    names[3], names[5] = "absent.jpg", "../outside.jpg"
    events, real_make = [], images.make_thumbnail

    def advise(fd, offset, length, advice):
        events.append(("advise", os.path.basename(os.readlink(f"/proc/self/fd/{fd}")), advice))

    def make(path, *args):
        events.append(("decode", path and os.path.basename(path), None))
        return real_make(path, *args)

    monkeypatch.setattr(os, "posix_fadvise", advise)
    monkeypatch.setattr(images, "make_thumbnail", make)
    got = images.thumbnail_batch(tmp_path, names)
    advised = [e for e in events if e[0] == "advise"]
    # every file there is, once, before the first decode, as a hint to read it in the background
    assert [(n, a) for _, n, a in advised] == [(n, os.POSIX_FADV_WILLNEED) for n in names if n[0].isdigit()]
    assert events[:len(advised)] == advised
    assert [g[0] for g in got] == ["ok"] * 3 + ["missing", "ok", "outside_root", "ok", "ok"]
    for name, g in zip(names, got):  # in order: each thumbnail is its own file's
        if g[0] == "ok":
            assert g == real_make(str(tmp_path / name))


def test_a_named_pipe_among_the_images_neither_blocks_nor_gets_a_thumbnail(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it for reading would wait for a writer forever
    (tmp_path / "car.jpg").write_bytes(jpeg())
    got = images.thumbnail_batch(tmp_path, ["pipe.jpg", "car.jpg"])
    assert [g[0] for g in got] == ["missing", "ok"]
