"""Thumbnails, made once in the loader, so the app never opens a user's file.

Every image is opened inside a try with Pillow's decompression-bomb check on;
a missing, corrupt or oversized image gets no thumbnail and a status the load
report counts, and the app shows :func:`placeholder` for it.
"""
from __future__ import annotations

import base64
import io
import os
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageDraw

from .descriptors import resolve_image
from .processes import SPAWN, orphan_guard, plain_main

THUMB_SIZE = 128
THUMB_QUALITY = 80
STATUSES = ("ok", "missing", "outside_root", "corrupt", "too_large")
# Pillow warns from 89 Mpx and raises from twice that; road-camera crops are tiny
MAX_PIXELS = 50_000_000


def make_thumbnail(path, size=THUMB_SIZE):
    """JPEG bytes of a thumbnail and the mean RGB of its centre.

    Returns
    -------
    status : str, one of STATUSES
    jpeg : bytes or None
    center_rgb : tuple of 3 float, or None
    """
    if path is None:
        return "outside_root", None, None
    if not os.path.isfile(path):
        return "missing", None, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    return "too_large", None, None
                im.draft("RGB", (size, size))  # JPEG decodes at 1/2..1/8 scale
                im = im.convert("RGB")
                # bilinear is a third cheaper than the default bicubic and looks
                # the same at thumbnail size; the stage touches every image
                im.thumbnail((size, size), Image.Resampling.BILINEAR)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "too_large", None, None
    except Exception:  # any decoder failure is a corrupt file, never a crash
        return "corrupt", None, None
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=THUMB_QUALITY)
    w, h = im.size
    centre = np.asarray(im.crop((w // 4, h // 4, w - w // 4, h - h // 4)), dtype=np.float32)
    return "ok", buf.getvalue(), tuple(float(c) for c in centre.reshape(-1, 3).mean(axis=0))


def _batch(args):
    root, rels, size = args
    return [make_thumbnail(resolve_image(root, rel), size) for rel in rels]


def iter_thumbnails(image_root, rel_paths, size=THUMB_SIZE, n_jobs=2, batch=512):
    """Thumbnails for every path, in order, as batches made by ``n_jobs`` processes.

    Yields
    ------
    list of (status, jpeg bytes or None, centre RGB or None)
        One batch of up to ``batch`` consecutive paths; batches come in order,
        so the caller can store them as they arrive.
    """
    tasks = [(str(image_root), rel_paths[i:i + batch], size) for i in range(0, len(rel_paths), batch)]
    if n_jobs <= 1 or len(tasks) <= 1:
        yield from map(_batch, tasks)
        return
    with ProcessPoolExecutor(n_jobs, mp_context=SPAWN, **orphan_guard()) as pool:
        with plain_main():  # the workers start with the first task
            batches = pool.map(_batch, tasks)
        yield from batches


_PLACEHOLDER = None


def data_uri(jpeg):
    """A ``data:`` URL of JPEG bytes, so that a page carries its pictures itself.

    Streamlit serves bytes given to ``st.image`` as media files and drops them
    when the session's next run ends; a browser still fetching the previous
    page's pictures then gets 404s. An inline picture has nothing to fetch.
    """
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def placeholder(size=THUMB_SIZE):
    """A grey 'no image' thumbnail, for images that could not be read."""
    global _PLACEHOLDER
    if _PLACEHOLDER is None:
        im = Image.new("RGB", (size, size * 3 // 4), (200, 200, 200))
        d = ImageDraw.Draw(im)
        d.line((0, 0) + im.size, fill=(150, 150, 150), width=2)
        d.line((0, im.size[1], im.size[0], 0), fill=(150, 150, 150), width=2)
        d.text((8, 8), "no image", fill=(60, 60, 60))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=THUMB_QUALITY)
        _PLACEHOLDER = buf.getvalue()
    return _PLACEHOLDER


COLOR_NAMES = {
    "black": (25, 25, 25), "white": (235, 235, 235), "grey": (128, 128, 128),
    "silver": (192, 192, 192), "red": (200, 30, 30), "orange": (240, 130, 20),
    "yellow": (235, 210, 40), "green": (40, 140, 60), "blue": (40, 70, 180),
    "brown": (120, 75, 40),
}


def color_name(rgb):
    """Nearest basic colour name of an RGB triple."""
    rgb = np.asarray(rgb, dtype=np.float64)
    names = list(COLOR_NAMES)
    refs = np.array([COLOR_NAMES[n] for n in names], dtype=np.float64)
    return names[int(np.argmin(((refs - rgb) ** 2).sum(axis=1)))]
