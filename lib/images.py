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

from .descriptors import resolve_under
from .processes import SPAWN, orphan_guard, plain_main

THUMB_SIZE = 128
THUMB_QUALITY = 80
STATUSES = ("ok", "missing", "outside_root", "corrupt", "too_large")
# Pillow warns from 89 Mpx and raises from twice that; road-camera crops are tiny
MAX_PIXELS = 50_000_000
MAX_FILE_BYTES = 64 * 2**20  # a file is read whole before decoding: no crop is near this


def _fit(width, height, size):
    """Pillow's thumbnail size: the largest width x height with the same aspect inside size x size."""
    scale = min(size / width, size / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode_pillow(data, size):
    """A thumbnail's RGB pixels (H x W x 3 uint8) with Pillow: JPEG draft mode decodes at 1/2..1/8.

    Any format Pillow reads. Raises ``TooLarge`` over MAX_PIXELS, any exception
    for a file that cannot be decoded.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise TooLarge
            im.draft("RGB", (size, size))  # JPEG decodes at 1/2..1/8 scale
            im = im.convert("RGB")
            # bilinear is a third cheaper than the default bicubic and looks
            # the same at thumbnail size; the stage touches every image
            im.thumbnail((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im)


def decode_simplejpeg(data, size):
    """As :func:`decode_pillow`, JPEG only, with libjpeg-turbo's DCT scaling through ``simplejpeg``.

    libjpeg-turbo scales by eighths while decoding (Pillow's draft mode only by
    1/2, 1/4 and 1/8), so a 192 x 144 crop decodes at 144 x 108 instead of
    whole before the resize into the box. Faster than Pillow on road-camera
    crops (``make bench`` part 'thumbnails'). Raises ``ValueError`` for
    anything that is not a JPEG it can decode strictly; :func:`make_thumbnail`
    then asks Pillow.

    The thumbnail always fills its box, as Pillow's does: a smaller DCT scale
    without the resize is faster still, but keeps highlights sharper, and the
    colour names (calibrated on filled boxes) then call white paint grey.
    """
    import simplejpeg  # imported here: the app never makes thumbnails

    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    if width * height > MAX_PIXELS:
        raise TooLarge
    w, h = _fit(width, height, size)
    a = simplejpeg.decode_jpeg(data, "RGB", min_height=h, min_width=w)
    if a.shape[:2] != (h, w):
        a = np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BILINEAR))
    return a


class TooLarge(Exception):
    """An image over MAX_PIXELS: refused before its pixels are decoded."""


# first the fast JPEG decoder, then Pillow for every other format and for what it refuses
DECODERS = {"simplejpeg": decode_simplejpeg, "pillow": decode_pillow}
DEFAULT_DECODERS = ("simplejpeg", "pillow")


def make_thumbnail(path, size=THUMB_SIZE, decoders=DEFAULT_DECODERS):
    """JPEG bytes of a thumbnail and the colour of the vehicle's body.

    Parameters
    ----------
    decoders : sequence of DECODERS keys (or callables ``f(data, size)``)
        Tried in order; the last one's failure makes the image corrupt.

    Returns
    -------
    status : str, one of STATUSES
    jpeg : bytes or None
    body_rgb : tuple of 3 float, or None
        :func:`body_colour` of the thumbnail (measured on the pixels already
        decoded, so the image is opened once); :func:`color_name` names it.
    """
    if path is None:
        return "outside_root", None, None
    if not os.path.isfile(path):
        return "missing", None, None
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError:
        return "corrupt", None, None
    if len(data) > MAX_FILE_BYTES:
        return "too_large", None, None
    a = None
    for decoder in decoders:
        try:
            a = DECODERS.get(decoder, decoder)(data, size)
            break
        except (TooLarge, Image.DecompressionBombError, Image.DecompressionBombWarning):
            return "too_large", None, None
        except Exception:  # any decoder failure: the next decoder, or a corrupt file; never a crash
            continue
    if a is None:
        return "corrupt", None, None
    return "ok", encode_jpeg(a), tuple(float(c) for c in body_colour(a))


def encode_jpeg(a, quality=THUMB_QUALITY):
    """JPEG bytes of H x W x 3 uint8 pixels (4:2:0, as Pillow; simplejpeg is a fifth faster)."""
    import simplejpeg

    return simplejpeg.encode_jpeg(np.ascontiguousarray(a), quality, "RGB", "420")


BATCH = 512  # paths per task: large enough that a task's overhead is small, small enough to store as they come


def thumbnail_batch(image_root, rel_paths, size=THUMB_SIZE, decoders=DEFAULT_DECODERS):
    """:func:`make_thumbnail` of every path under ``image_root``, in order (one task of a pool or of Dask).

    The kernel is first asked to read all of the batch's files (:func:`will_need`),
    so a disk that is not in the page cache reads beside the decoding, not before it.
    """
    root, folders = os.path.realpath(image_root), {}  # once per batch, not per image
    paths = [resolve_under(root, rel, folders) for rel in rel_paths]
    will_need(paths)
    return [make_thumbnail(path, size, decoders) for path in paths]


def will_need(paths):
    """Ask the kernel to read ``paths`` into its page cache in the background (a hint: errors are ignored)."""
    if not hasattr(os, "posix_fadvise"):  # not on every platform; then the files are read as they come
        return
    for path in paths:
        if path is None:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a named pipe among the images must not block
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)


def _batch(args):
    return thumbnail_batch(*args)


def iter_thumbnails(image_root, rel_paths, size=THUMB_SIZE, n_jobs=2, batch=BATCH, decoders=DEFAULT_DECODERS):
    """Thumbnails for every path, in order, as batches made by ``n_jobs`` processes.

    Yields
    ------
    list of (status, jpeg bytes or None, centre RGB or None)
        One batch of up to ``batch`` consecutive paths; batches come in order,
        so the caller can store them as they arrive.
    """
    tasks = [(str(image_root), rel_paths[i:i + batch], size, decoders) for i in range(0, len(rel_paths), batch)]
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


# ---------------------------------------------------------------- colour names
#
# What a person calls a car's colour is the colour of its paint, judged against
# the scene: a white car in a dim frame is still white. So the colour is
# measured on the body, not on the centre of the crop (glass, grille, road),
# corrected for exposure, and named in CIELAB, where distances are roughly
# what the eye sees.

# Palette: what cars are. Silver and grey are one name (a camera's exposure
# moves one into the other); the RGB triples are also the Overview's bar colours.
COLOR_NAMES = {
    "white": (242, 242, 240), "silver/grey": (150, 153, 158), "black": (28, 28, 30),
    "red": (190, 28, 32), "orange": (236, 120, 24), "yellow": (236, 204, 36),
    "green": (36, 126, 56), "blue": (30, 64, 170), "brown": (112, 70, 40), "beige": (214, 194, 152),
}
MIXED = "mixed"  # a cluster in which no colour holds a clear share
MIXED_RGB = (176, 160, 204)  # a muted lavender: no car colour, so it never reads as one
MIXED_SHARE = 0.5  # a cluster's top colour needs at least this share of its named images

# The body band of a crop: road-camera crops are tight, the vehicle centred; at
# 52-66 % of the height lies the body below the windows (side views: doors
# between the wheels; front/rear: the panel at the lights, above the plate).
BODY_ROWS = (0.52, 0.66)
BODY_COLS = (0.20, 0.80)
_DARK_L, _DARK_WEIGHT = 25.0, 0.3
_BIN = np.array([8.0, 10.0, 10.0])  # Lab bins for the most common colour
_REF_PERCENTILE, _REF_WHITE, _MAX_GAIN = 99.5, 245.0, 1.7
_WHITE_L, _BLACK_L, _ACHROMATIC_C = 88.0, 24.0, 12.0
_CHROMATIC = ("red", "orange", "yellow", "green", "blue", "brown", "beige")

_M = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_D65 = np.array([0.95047, 1.0, 1.08883])
_XYZ = (_M / _D65[:, None]).T


_LINEAR = np.where(np.arange(256) <= 10.31475, np.arange(256) / 255 / 12.92,
                   ((np.arange(256) / 255 + 0.055) / 1.055) ** 2.4)  # sRGB byte -> linear light


def srgb_to_lab(rgb):
    """CIELAB (D65) of sRGB values 0..255, any shape (..., 3); uint8 goes through a table."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        lin = _LINEAR[rgb]
    else:
        c = rgb.astype(np.float64) / 255.0
        lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return np.stack(_lab_from_linear(lin), -1)


def _lab_from_linear(lin):
    """L, a and b of linear-light RGB (..., 3) as three arrays, in the few numpy calls a hot loop wants."""
    f = lin @ _XYZ
    g = np.cbrt(f)
    small = f <= 216 / 24389
    if small.any():
        g[small] = (24389 / 27 * f[small] + 16) / 116
    return 116 * g[..., 1] - 16, 500 * (g[..., 0] - g[..., 1]), 200 * (g[..., 1] - g[..., 2])


def _median_rows(x):
    """``np.median(x, axis=0)`` of a small N x 3 array, by one sort (np.median's overhead is most of its time)."""
    s = np.sort(x, axis=0)
    n = len(s)
    return s[n // 2].astype(np.float64) if n % 2 else (s[n // 2 - 1].astype(np.float64) + s[n // 2]) / 2


_CHROMATIC_LAB = srgb_to_lab(np.array([COLOR_NAMES[n] for n in _CHROMATIC], dtype=np.float64))


def body_colour(rgb):
    """The paint colour of the vehicle in an H x W x 3 uint8 picture, as RGB.

    The most common colour (8 x 10 x 10 Lab bins; dark and warm-bright pixels,
    i.e. glass, tyres, grille and lights, weighted 0.3)
    of the body band, its median RGB, brightened by the frame's exposure: the
    99.5th percentile of the brightest channel (lights, plate, lane marks,
    white paint) is taken as white, so a dim frame does not turn white paint
    grey. A few hundred pixels in numpy: cheap beside the JPEG decode.
    """
    a = np.asarray(rgb, dtype=np.uint8)
    h, w = a.shape[:2]
    r0, c0 = int(BODY_ROWS[0] * h), int(BODY_COLS[0] * w)
    band = a[r0:max(int(BODY_ROWS[1] * h), r0 + 1), c0:max(int(BODY_COLS[1] * w), c0 + 1)].reshape(-1, 3)
    L, A, B = _lab_from_linear(_LINEAR[band])
    # glass, tyres, grille and shadow are dark, lights warm and bright: they count less than paint
    lights = (L > 75) & (B > 8) & (B < 30)
    weight = np.where((L < _DARK_L) | lights, _DARK_WEIGHT, 1.0)
    # bins: L 0..12, a and b -16..15 (clipped)
    qL = np.clip(np.floor(L / _BIN[0]), 0, 13).astype(np.int64)
    qa = np.clip(np.floor(A / _BIN[1]) + 16, 0, 31).astype(np.int64)
    qb = np.clip(np.floor(B / _BIN[2]) + 16, 0, 31).astype(np.int64)
    bins = (qL * 32 + qa) * 32 + qb
    body = _median_rows(band[bins == np.argmax(np.bincount(bins, weights=weight))])
    bright = np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2]).ravel()  # faster than max(axis=2)
    k = min(bright.size - 1, int(_REF_PERCENTILE / 100 * bright.size))
    ref = float(np.partition(bright, k)[k])
    gain = float(np.clip(_REF_WHITE / max(ref, 1.0), 1.0, _MAX_GAIN))
    return np.clip(body * gain, 0.0, 255.0)


def color_name(rgb):
    """The palette name of an RGB triple (a :func:`body_colour`), judged in CIELAB.

    Nearly grey (chroma < 12): white, silver/grey or black by lightness;
    otherwise the nearest chromatic palette entry, lightness counting half
    (exposure moves it most).
    """
    return color_names(np.asarray(rgb, dtype=np.float64)[None, :])[0]


_GREYS = np.array(["white", "silver/grey", "black"], dtype=object)


def color_names(rgb):
    """:func:`color_name` of every row of an (n, 3) array, None for a row with no colour (NaN), in a few
    numpy calls (the loader names every image: one call per image cost about 9 s of the loader's own
    time at 414,575 images)."""
    lab = srgb_to_lab(np.asarray(rgb, dtype=np.float64).reshape(-1, 3))
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    grey = _GREYS[np.where(L >= _WHITE_L, 0, np.where(L < _BLACK_L, 2, 1))]
    d = ((_CHROMATIC_LAB[None, :, :] - lab[:, None, :]) ** 2 * np.array([0.5, 1.0, 1.0])).sum(-1)
    chromatic = np.array(_CHROMATIC, dtype=object)[np.argmin(d, axis=1)]
    # dark and barely tinted: black paint, or tinted glass
    names = np.where(chroma < _ACHROMATIC_C, grey, np.where((L < 25) & (chroma < 20), "black", chromatic))
    return [None if np.isnan(x) else n for x, n in zip(L, names.tolist())]


def body_rgbs(batch):
    """The body colours of a :func:`thumbnail_batch` as an (n, 3) float32 array, NaN where none was measured."""
    return np.array([b[2] if b[2] else (np.nan,) * 3 for b in batch], dtype=np.float32)
