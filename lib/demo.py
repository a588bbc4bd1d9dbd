"""Synthetic demo dataset in the layout of the real VeRi-Wild export.

The real data set is a folder of road-camera vehicle crops plus one pickled
descriptor matrix per network (EfficientNet-B7, OSNet, and the two heads of a
vehicle colour/type classifier).  :func:`generate` writes a look-alike with
*planted* structure so that tests can check the clustering pipeline recovers
it:

* every vehicle has a fixed body type, colour and a few identity details and
  is photographed ~10 times by different cameras from different views;
* about 1 % of the photos are planted outliers of four kinds (empty road,
  occlusion, night, wrong crop) whose pictures really look so;
* descriptors are linear maps of per-image latent factors (colour, type,
  view, identity, camera, ...) plus noise, with each network weighting the
  factors differently, so e.g. ``vdc_color`` clusters by colour and ``osnet``
  by vehicle identity.

``truth.csv`` records the planted labels; the loader never reads it.

Layout written under ``out_dir``::

    descriptors/efficientnet-b7.pickle   N x 2560 float32
    descriptors/osnet.pickle             N x 512
    descriptors/vdc_color.pickle         N x 128
    descriptors/vdc_type.pickle          N x 512
    images_paths.csv                     header "paths", foreign absolute paths
    raw_data/<folder>/<vid5>/<vid6>_c<cam3>_<serial5>.jpg
    truth.csv                            planted labels, one row per image

This module must not import streamlit (it is used by the CLI and by tests).
"""

from __future__ import annotations

import csv
import os
import pickle
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = [
    "generate",
    "write_pickle",
    "FOREIGN_ROOT",
    "TYPES",
    "COLORS",
    "VIEWS",
    "OUTLIER_KINDS",
    "MODEL_DIMS",
]

# Paths in images_paths.csv point into a foreign machine's tree, as in the
# real export; the loader has to remap them onto the local raw_data folder.
FOREIGN_ROOT = "/kaggle/input/intellivision-case/raw_data"

TYPES = ("sedan", "hatchback", "suv", "minivan", "pickup", "truck", "bus")
_TYPE_FREQ = np.array([0.30, 0.15, 0.22, 0.10, 0.08, 0.09, 0.06])

COLORS = {
    "white": (236, 236, 234),
    "black": (24, 24, 27),
    "silver": (180, 184, 190),
    "grey": (105, 108, 113),
    "red": (192, 24, 30),
    "blue": (28, 62, 170),
    "green": (30, 122, 52),
    "yellow": (238, 204, 30),
    "orange": (238, 118, 22),
    "brown": (112, 70, 38),
}
_COLOR_NAMES = tuple(COLORS)
# Achromatic colours dominate real traffic; bright colours are rarer.
_COLOR_FREQ = np.array([0.22, 0.17, 0.13, 0.13, 0.09, 0.09, 0.05, 0.04, 0.04, 0.04])

VIEWS = ("front", "rear", "side")
OUTLIER_KINDS = ("empty_road", "occlusion", "night", "wrong_crop")

MODEL_DIMS = {
    "efficientnet-b7": 2560,
    "osnet": 512,
    "vdc_color": 128,
    "vdc_type": 512,
}

MEAN_PHOTOS_PER_VEHICLE = 10.2  # 40671 vehicles -> ~416k images, as the real set
_CAMERA_ID_MAX = 174  # VeRi-Wild has 174 cameras; ids are drawn from 1..174
_JPEG_QUALITY = 85
_CHUNK_ROWS = 16384  # descriptor rows per chunk; bounds temporaries to ~170 MB

# Independent random streams, so that e.g. changing the renderer does not
# change the descriptors.  Every generator is default_rng([seed, stream, ...]).
_S_CAMERAS, _S_VEHICLES, _S_PHOTOS, _S_LATENT, _S_MODEL, _S_IMAGE = range(6)


# --------------------------------------------------------------------------
# Pickle writing
# --------------------------------------------------------------------------


class _RawData:
    """Wraps an array so the pickler streams its bytes instead of copying."""

    __slots__ = ("arr",)

    def __init__(self, arr: np.ndarray):
        self.arr = arr


class _StreamingPickler(pickle._Pickler):
    """Pure-Python pickler producing the same bytes as ``pickle.dump``.

    ``ndarray.__reduce_ex__(4)`` calls ``tobytes()``, i.e. a full in-memory
    copy (4.3 GB for EfficientNet at full scale).  Here the array's buffer is
    handed to ``file.write`` as a memoryview instead; the emitted opcodes are
    identical to what the C pickler writes (checked in the tests).
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def reducer_override(self, obj):
        if type(obj) is np.ndarray and obj.flags.c_contiguous and not obj.dtype.hasobject:
            func, args, state = np.empty(0, dtype=obj.dtype).__reduce_ex__(self.proto)
            version, _shape, dtype, is_fortran, _raw = state
            return func, args, (version, obj.shape, dtype, is_fortran, _RawData(obj))
        return NotImplemented

    def _save_rawdata(self, obj: _RawData):
        # Mirrors pickle._Pickler.save_bytes for protocol >= 3.
        mv = memoryview(obj.arr.reshape(-1).view(np.uint8))  # a view, not a copy
        n = mv.nbytes
        if n <= 0xFF:
            self.write(pickle.SHORT_BINBYTES + n.to_bytes(1, "little") + mv.tobytes())
        elif n > 0xFFFFFFFF:
            self._write_large_bytes(pickle.BINBYTES8 + n.to_bytes(8, "little"), mv)
        elif n >= self.framer._FRAME_SIZE_TARGET:
            self._write_large_bytes(pickle.BINBYTES + n.to_bytes(4, "little"), mv)
        else:
            self.write(pickle.BINBYTES + n.to_bytes(4, "little") + mv.tobytes())
        self.memoize(obj)

    dispatch[_RawData] = _save_rawdata


def write_pickle(arr: np.ndarray, path) -> None:
    """Pickle a numpy array with protocol 4 without a full in-memory copy.

    The file is byte-identical to ``pickle.dump(arr, f, protocol=4)`` and
    loads with a plain ``pickle.load``.

    Parameters
    ----------
    arr : numpy.ndarray
        C-contiguous, non-object array.
    path : str or path-like
        Output file; overwritten.
    """
    with open(path, "wb") as f:
        _StreamingPickler(f, protocol=4).dump(arr)


# --------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------

# Side profiles, vehicle facing left (u=0 is the front, v=0 the roof).
# aspect = length / height of the bounding box.
_SIDE = {
    "sedan": dict(
        aspect=2.9,
        body=[(0.00, 0.60), (0.01, 0.47), (0.24, 0.41), (0.35, 0.13), (0.65, 0.13),
              (0.78, 0.39), (0.99, 0.43), (1.00, 0.60), (0.99, 0.80), (0.01, 0.80)],
        windows=[[(0.37, 0.17), (0.49, 0.17), (0.49, 0.40), (0.27, 0.41)],
                 [(0.51, 0.17), (0.63, 0.17), (0.74, 0.39), (0.51, 0.40)]],
        wheels=(0.19, 0.80), wheel_v=0.80, wheel_r=0.17, roof=(0.37, 0.63, 0.13),
        head=(0.005, 0.47, 0.05, 0.53), tail=(0.96, 0.45, 0.995, 0.52)),
    "hatchback": dict(
        aspect=2.4,
        body=[(0.00, 0.60), (0.01, 0.47), (0.26, 0.41), (0.40, 0.12), (0.84, 0.12),
              (0.98, 0.33), (1.00, 0.60), (0.99, 0.80), (0.01, 0.80)],
        windows=[[(0.42, 0.16), (0.58, 0.16), (0.58, 0.40), (0.30, 0.41)],
                 [(0.60, 0.16), (0.82, 0.16), (0.93, 0.36), (0.60, 0.40)]],
        wheels=(0.19, 0.80), wheel_v=0.80, wheel_r=0.18, roof=(0.42, 0.82, 0.12),
        head=(0.005, 0.47, 0.05, 0.53), tail=(0.96, 0.36, 0.995, 0.46)),
    "suv": dict(
        aspect=2.3,
        body=[(0.00, 0.58), (0.01, 0.38), (0.22, 0.33), (0.32, 0.06), (0.95, 0.06),
              (0.99, 0.18), (1.00, 0.58), (0.99, 0.76), (0.01, 0.76)],
        windows=[[(0.34, 0.10), (0.55, 0.10), (0.55, 0.35), (0.26, 0.35)],
                 [(0.57, 0.10), (0.93, 0.10), (0.96, 0.35), (0.57, 0.35)]],
        wheels=(0.19, 0.81), wheel_v=0.78, wheel_r=0.19, roof=(0.34, 0.93, 0.06),
        head=(0.005, 0.38, 0.05, 0.45), tail=(0.965, 0.25, 0.995, 0.38)),
    "minivan": dict(
        aspect=2.35,
        body=[(0.00, 0.62), (0.01, 0.44), (0.10, 0.38), (0.27, 0.05), (0.97, 0.05),
              (1.00, 0.15), (1.00, 0.62), (0.99, 0.82), (0.01, 0.82)],
        windows=[[(0.29, 0.09), (0.45, 0.09), (0.45, 0.38), (0.15, 0.38)],
                 [(0.47, 0.09), (0.70, 0.09), (0.70, 0.38), (0.47, 0.38)],
                 [(0.72, 0.09), (0.96, 0.09), (0.97, 0.38), (0.72, 0.38)]],
        wheels=(0.16, 0.83), wheel_v=0.82, wheel_r=0.16, roof=(0.30, 0.95, 0.05),
        head=(0.005, 0.44, 0.05, 0.50), tail=(0.965, 0.20, 0.995, 0.40)),
    "pickup": dict(
        aspect=2.9,
        body=[(0.00, 0.60), (0.01, 0.44), (0.20, 0.39), (0.29, 0.09), (0.54, 0.09),
              (0.57, 0.39), (1.00, 0.37), (1.00, 0.78), (0.00, 0.78)],
        windows=[[(0.31, 0.13), (0.42, 0.13), (0.42, 0.38), (0.25, 0.38)],
                 [(0.44, 0.13), (0.52, 0.13), (0.54, 0.38), (0.44, 0.38)]],
        lines=[((0.59, 0.42), (0.985, 0.42))],
        wheels=(0.18, 0.80), wheel_v=0.78, wheel_r=0.18, roof=(0.31, 0.53, 0.09),
        head=(0.005, 0.44, 0.05, 0.51), tail=(0.97, 0.40, 0.995, 0.50)),
    "truck": dict(
        aspect=2.7,
        body=[(0.00, 0.86), (0.00, 0.30), (0.03, 0.12), (0.27, 0.10), (0.27, 0.86)],
        cargo=[(0.29, 0.00), (1.00, 0.00), (1.00, 0.80), (0.29, 0.80)],
        chassis=(0.0, 0.79, 1.0, 0.86),
        windows=[[(0.04, 0.16), (0.21, 0.14), (0.21, 0.45), (0.02, 0.45)]],
        wheels=(0.13, 0.70, 0.85), wheel_v=0.87, wheel_r=0.12, roof=(0.05, 0.25, 0.10),
        head=(0.0, 0.62, 0.04, 0.70), tail=(0.975, 0.66, 1.0, 0.76)),
    "bus": dict(
        aspect=3.1,
        body=[(0.00, 0.88), (0.00, 0.12), (0.02, 0.04), (0.98, 0.04), (1.00, 0.10),
              (1.00, 0.88)],
        windows=[[(0.005, 0.10), (0.05, 0.10), (0.05, 0.55), (0.005, 0.55)],
                 [(0.065, 0.12), (0.12, 0.12), (0.12, 0.84), (0.065, 0.84)]]
        + [[(u, 0.12), (u + 0.085, 0.12), (u + 0.085, 0.45), (u, 0.45)]
           for u in np.arange(0.14, 0.95, 0.1)],
        wheels=(0.15, 0.80), wheel_v=0.88, wheel_r=0.12, roof=(0.10, 0.90, 0.04),
        head=(0.0, 0.70, 0.03, 0.78), tail=(0.975, 0.70, 1.0, 0.80)),
}

# Front/rear "faces": aspect = width / height; top = roof line, belt = bottom
# of the glass, inset = how much the roof is narrower than the body.
_FACE = {
    "sedan": dict(aspect=1.60, top=0.22, belt=0.50, inset=0.17),
    "hatchback": dict(aspect=1.45, top=0.15, belt=0.50, inset=0.15),
    "suv": dict(aspect=1.28, top=0.06, belt=0.44, inset=0.09),
    "minivan": dict(aspect=1.18, top=0.04, belt=0.46, inset=0.07),
    "pickup": dict(aspect=1.35, top=0.08, belt=0.44, inset=0.10),
    "truck": dict(aspect=1.00, top=0.26, belt=0.54, inset=0.06),
    "bus": dict(aspect=0.88, top=0.02, belt=0.58, inset=0.00),
}

_GLASS = (38, 48, 62)
_TYRE = (22, 22, 24)
_HUBS = ((190, 192, 196), (40, 40, 44), (150, 130, 90))
_STRIPES = ((245, 245, 245), (20, 20, 20), (200, 30, 30), (240, 200, 40))
_PLATE_BG = ((245, 245, 240), (240, 205, 40), (40, 80, 170))
_PLATE_FG = ((20, 20, 20), (20, 20, 20), (245, 245, 245))
_PLATE_CHARS = np.array(list("ABCEHKMOPTXY0123456789"))

# Look-alike labels: some photos of a colour/type read partly as one of these
# (lighting, white balance, a boxy hatchback ...), as real classifiers do.
_COLOR_CONFUSION = {
    "white": ("silver", "yellow"), "black": ("grey", "brown", "blue"),
    "silver": ("white", "grey"), "grey": ("silver", "black", "blue"),
    "red": ("orange", "brown"), "blue": ("black", "grey"), "green": ("grey", "black"),
    "yellow": ("orange", "white"), "orange": ("red", "yellow"), "brown": ("black", "red"),
}
_TYPE_CONFUSION = {
    "sedan": ("hatchback",), "hatchback": ("sedan", "suv"),
    "suv": ("minivan", "pickup", "hatchback"), "minivan": ("suv",),
    "pickup": ("suv", "truck"), "truck": ("bus", "pickup"), "bus": ("truck",),
}
_AMBIGUOUS_SHARE = 0.10
# Perceptual colour features (lightness, red-green, yellow-blue), roughly Lab/100.
_COLOR_PERCEPT = {
    "white": (0.95, 0.0, 0.0), "black": (0.05, 0.0, 0.0), "silver": (0.75, 0.0, -0.03),
    "grey": (0.45, 0.0, -0.03), "red": (0.42, 0.65, 0.45), "blue": (0.28, 0.25, -0.65),
    "green": (0.44, -0.5, 0.35), "yellow": (0.83, -0.05, 0.8), "orange": (0.62, 0.45, 0.7),
    "brown": (0.33, 0.2, 0.3),
}
# Shape features of the body types (length, height, utility).
_TYPE_SHAPE = {
    "sedan": (0.45, 0.15, 0.0), "hatchback": (0.3, 0.25, 0.0), "suv": (0.45, 0.55, 0.2),
    "minivan": (0.55, 0.7, 0.2), "pickup": (0.55, 0.45, 0.65), "truck": (0.85, 0.95, 0.95),
    "bus": (1.1, 1.0, 0.55),
}

_FONTS: dict = {}


def _font(size: int):
    size = max(6, int(size))
    if size not in _FONTS:
        try:
            _FONTS[size] = ImageFont.load_default(size=size)
        except TypeError:  # very old Pillow: bitmap font only
            _FONTS[size] = ImageFont.load_default()
    return _FONTS[size]


class _Box:
    """Maps normalised vehicle coordinates (u, v) to image pixels."""

    def __init__(self, x0, y0, w, h, flip=False):
        self.x0, self.y0, self.w, self.h, self.flip = x0, y0, w, h, flip

    def p(self, u, v):
        if self.flip:
            u = 1.0 - u
        return (self.x0 + u * self.w, self.y0 + v * self.h)

    def poly(self, pts):
        return [self.p(u, v) for u, v in pts]

    def rect(self, u0, v0, u1, v1):
        (xa, ya), (xb, yb) = self.p(u0, v0), self.p(u1, v1)
        return [min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)]


def _shade(rgb, cam, k=1.0):
    """Apply the camera's brightness and white balance to a colour."""
    c = np.asarray(rgb, dtype=float) * cam["tint"] * cam["brightness"] * k
    return tuple(int(x) for x in np.clip(c, 0, 255))


def _vehicle_box(type_name, view, size, scale=1.0, dx=0.0, dy=0.0):
    """Pixel box of the vehicle: crops are tight, so the vehicle fills most of it."""
    W, H = size
    aspect = _SIDE[type_name]["aspect"] if view == "side" else _FACE[type_name]["aspect"]
    s = min(0.92 * W / aspect, 0.86 * H) * scale
    w, h = s * aspect, s
    x0 = (W - w) / 2 + dx * W
    y0 = (H - h) / 2 + 0.04 * H + dy * H
    return x0, y0, w, h


def _draw_wheel(d, cx, cy, r, style, cam):
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_shade(_TYRE, cam))
    hub = _shade(_HUBS[style % len(_HUBS)], cam)
    rh = r * 0.55
    d.ellipse([cx - rh, cy - rh, cx + rh, cy + rh], fill=hub)
    if style == 1:  # dark hub with a bright rim ring
        d.ellipse([cx - rh, cy - rh, cx + rh, cy + rh], outline=_shade((200, 200, 200), cam),
                  width=max(1, int(r * 0.12)))
    elif style == 2:  # spokes
        for a in np.linspace(0, np.pi, 3, endpoint=False):
            ex, ey = np.cos(a) * rh, np.sin(a) * rh
            d.line([cx - ex, cy - ey, cx + ex, cy + ey], fill=_shade((70, 70, 70), cam),
                   width=max(1, int(r * 0.15)))


def _draw_plate(d, rect, det, cam):
    x0, y0, x1, y1 = rect
    k = det["plate_style"]
    d.rectangle(rect, fill=_shade(_PLATE_BG[k], cam), outline=_shade((30, 30, 30), cam))
    h = y1 - y0
    if h >= 6:
        # Font size limited by height and by width (glyphs are ~0.6 em wide).
        size = min(h * 0.95, (x1 - x0) / (0.62 * len(det["plate"])))
        d.text(((x0 + x1) / 2, (y0 + y1) / 2), det["plate"], fill=_shade(_PLATE_FG[k], cam),
               font=_font(size), anchor="mm")


def _draw_side(d, box, tname, body, cam, det, lights=True):
    spec = _SIDE[tname]
    edge = _shade(np.asarray(body) * 0.55, cam)
    bodyc = _shade(body, cam)
    # Shadow on the road first, so the vehicle stands on something.
    sx0, _, sx1, _ = box.rect(-0.02, 0, 1.02, 0)
    sy = box.p(0, spec["wheel_v"] + spec["wheel_r"] * 0.9)[1]
    d.ellipse([sx0, sy - box.h * 0.05, sx1, sy + box.h * 0.05], fill=_shade((35, 35, 38), cam))
    if "cargo" in spec:
        d.rectangle(box.rect(*spec["chassis"]), fill=_shade((45, 45, 48), cam))
        d.polygon(box.poly(spec["cargo"]), fill=_shade(body, cam, 0.88), outline=edge)
    d.polygon(box.poly(spec["body"]), fill=bodyc, outline=edge)
    if det["stripe"] >= 0:
        v = 0.55 if tname != "truck" else 0.45
        u1 = 0.97 if tname != "truck" else 0.27
        d.rectangle(box.rect(0.03, v, u1, v + 0.05), fill=_shade(_STRIPES[det["stripe"]], cam))
    for w in spec["windows"]:
        d.polygon(box.poly(w), fill=_shade(_GLASS, cam))
    for a, b in spec.get("lines", []):
        d.line([box.p(*a), box.p(*b)], fill=edge, width=max(1, int(box.h * 0.03)))
    if det["rack"]:
        u0, u1, v = spec["roof"]
        d.rectangle(box.rect(u0, v - 0.05, u1, v - 0.025), fill=_shade((50, 50, 52), cam))
    if lights:
        d.rectangle(box.rect(*spec["head"]), fill=_shade((245, 240, 210), cam))
        d.rectangle(box.rect(*spec["tail"]), fill=_shade((200, 20, 20), cam))
    r = spec["wheel_r"] * box.h
    for u in spec["wheels"]:
        cx, cy = box.p(u, spec["wheel_v"])
        _draw_wheel(d, cx, cy, r, det["wheel"], cam)


def _draw_face(d, box, tname, view, body, cam, det, lights=True):
    f = _FACE[tname]
    top, belt, inset = f["top"], f["belt"], f["inset"]
    bodyc = _shade(body, cam)
    edge = _shade(np.asarray(body) * 0.55, cam)
    dark = _shade((35, 35, 38), cam)
    d.ellipse(box.rect(-0.03, 0.90, 1.03, 1.02), fill=dark)  # shadow
    if tname == "truck" and view == "front":
        # The cargo box towers above and beside the cab.
        d.rectangle(box.rect(-0.02, 0.0, 1.02, 0.5), fill=_shade(body, cam, 0.85), outline=edge)
    for u0 in (0.06, 0.78):  # tyres peek out below the body
        d.rectangle(box.rect(u0, 0.80, u0 + 0.16, 0.99), fill=_shade(_TYRE, cam))
    # Mirrors stick out at the belt line.
    d.rectangle(box.rect(-0.05, belt - 0.06, 0.02, belt + 0.02), fill=bodyc, outline=edge)
    d.rectangle(box.rect(0.98, belt - 0.06, 1.05, belt + 0.02), fill=bodyc, outline=edge)
    d.rounded_rectangle(box.rect(0.0, belt - 0.04, 1.0, 0.92), radius=max(1, box.h * 0.06),
                        fill=bodyc, outline=edge)
    d.polygon(box.poly([(inset, top), (1 - inset, top), (0.99, belt), (0.01, belt)]),
              fill=bodyc, outline=edge)
    if det["rack"]:
        d.rectangle(box.rect(inset + 0.03, top - 0.035, 1 - inset - 0.03, top - 0.01),
                    fill=_shade((50, 50, 52), cam))
    truck_rear = tname == "truck" and view == "rear"
    if truck_rear:
        # Rear of a box truck: two big cargo doors, no glass.
        d.rectangle(box.rect(0.02, 0.02, 0.98, 0.84), fill=_shade(body, cam, 0.88), outline=edge)
        d.line([box.p(0.5, 0.02), box.p(0.5, 0.84)], fill=edge, width=max(1, int(box.w * 0.015)))
    else:
        g0, g1 = (top + 0.04, belt - 0.01) if view == "front" else (top + 0.08, belt - 0.06)
        gi = inset + 0.04 + (0.0 if view == "front" else 0.05)
        gb = 0.06 if view == "front" else 0.10  # rear window is smaller
        d.polygon(box.poly([(gi, g0), (1 - gi, g0), (1 - gb, g1), (gb, g1)]),
                  fill=_shade(_GLASS, cam))
        # A reflection streak reads as glass even in a thumbnail.
        d.line([box.p(gi + 0.08, g0 + 0.02), box.p(gi + 0.02, g1 - 0.02)],
               fill=_shade((110, 120, 135), cam), width=max(1, int(box.w * 0.012)))
    if tname == "bus" and view == "front":
        # Destination display above the windscreen.
        d.rectangle(box.rect(0.12, 0.05, 0.88, 0.13), fill=dark)
        d.rectangle(box.rect(0.18, 0.07, 0.6, 0.11), fill=_shade((250, 160, 30), cam))
    if det["stripe"] >= 0 and view == "front" and tname not in ("bus", "truck"):
        d.rectangle(box.rect(0.45, belt, 0.55, 0.62), fill=_shade(_STRIPES[det["stripe"]], cam))
    lv0, lv1 = belt + 0.06, belt + 0.16
    if tname in ("truck", "bus"):
        lv0, lv1 = 0.70, 0.78
    if lights:
        lc = (245, 240, 210) if view == "front" else (205, 22, 22)
        for u0, u1 in ((0.05, 0.24), (0.76, 0.95)):
            if view == "front":
                d.ellipse(box.rect(u0, lv0, u1, lv1), fill=_shade(lc, cam), outline=edge)
            else:
                d.rectangle(box.rect(u0, lv0, u1, lv1), fill=_shade(lc, cam))
    if view == "front":
        gv0 = lv0 + 0.01
        d.rectangle(box.rect(0.32, gv0, 0.68, gv0 + 0.12), fill=dark)
        for k in range(1, 3):
            v = gv0 + 0.04 * k
            d.line([box.p(0.33, v), box.p(0.67, v)], fill=_shade((90, 90, 95), cam), width=1)
    elif tname == "pickup":
        d.line([box.p(0.05, belt + 0.03), box.p(0.95, belt + 0.03)], fill=edge,
               width=max(1, int(box.h * 0.02)))
    d.rectangle(box.rect(0.0, 0.84, 1.0, 0.92), fill=_shade(body, cam, 0.7))  # bumper
    _draw_plate(d, box.rect(0.38, 0.72, 0.62, 0.83), det, cam)


def _draw_vehicle(img, type_idx, color_idx, view_idx, cam, det, box_params, lights=True):
    tname, view = TYPES[type_idx], VIEWS[view_idx]
    body = COLORS[_COLOR_NAMES[color_idx]]
    x0, y0, w, h = _vehicle_box(tname, view, img.size, *box_params)
    d = ImageDraw.Draw(img)
    box = _Box(x0, y0, w, h, flip=det["facing"] > 0)
    if view == "side":
        _draw_side(d, box, tname, body, cam, det, lights)
    else:
        _draw_face(d, box, tname, view, body, cam, det, lights)
    return box


def _make_cameras(n, size, rng):
    """Per-camera look: backdrop, road tone/texture, lane marks, brightness, tint."""
    W, H = size
    ids = np.sort(rng.choice(np.arange(1, _CAMERA_ID_MAX + 1), size=n, replace=False))
    backdrops = [(95, 130, 70), (60, 95, 55), (150, 160, 170), (170, 150, 120), (120, 140, 165),
                 (90, 90, 100), (185, 185, 175)]
    views_p = np.array([0.45, 0.40, 0.15])
    cams = []
    yy = np.arange(H)[:, None]
    for i in range(n):
        horizon = int(H * rng.uniform(0.12, 0.38))
        road = rng.uniform(70, 150)
        tone = np.array([road, road, road]) + rng.uniform(-6, 6, 3)
        back = np.array(backdrops[rng.integers(len(backdrops))], float) + rng.uniform(-15, 15, 3)
        arr = np.empty((H, W, 3), float)
        # Backdrop gets a vertical gradient, road gets asphalt grain + a
        # slight perspective gradient (darker far away).
        grad = 0.85 + 0.15 * (yy[:horizon] / max(horizon, 1))
        arr[:horizon] = back * grad[..., None]
        rg = 0.9 + 0.15 * ((yy[horizon:] - horizon) / max(H - horizon, 1))
        arr[horizon:] = tone * rg[..., None]
        arr[horizon:] += rng.normal(0, rng.uniform(3, 10), (H - horizon, W, 1))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        d = ImageDraw.Draw(img)
        # Backdrop furniture: buildings or tree crowns.
        for _ in range(rng.integers(2, 6)):
            x = rng.uniform(-0.1, 1.0) * W
            bw = rng.uniform(0.1, 0.35) * W
            top = rng.uniform(0.0, 0.7) * horizon
            c = tuple(int(v) for v in np.clip(back * rng.uniform(0.6, 1.2), 0, 255))
            if rng.random() < 0.5:
                d.rectangle([x, top, x + bw, horizon], fill=c)
            else:
                d.ellipse([x, top, x + bw, horizon + 0.1 * H], fill=c)
        d.rectangle([0, horizon, W, horizon + max(2, 0.04 * H)], fill=tuple(
            int(v) for v in np.clip(tone * 1.35, 0, 255)))  # kerb
        lane = (235, 235, 230) if rng.random() < 0.7 else (230, 190, 40)
        for _ in range(rng.integers(1, 3)):
            xb, xt = rng.uniform(-0.2, 1.2) * W, rng.uniform(0.2, 0.8) * W
            lw = int(rng.integers(2, 5))
            dashed = rng.random() < 0.6
            segs = 8 if dashed else 1
            for k in range(segs):
                t0, t1 = k / segs, (k + (0.55 if dashed else 1.0)) / segs
                ya, yb = horizon + t0 * (H - horizon), horizon + t1 * (H - horizon)
                xa, xb2 = xt + (xb - xt) * t0, xt + (xb - xt) * t1
                d.line([xa, ya, xb2, yb], fill=lane, width=lw)
        brightness = rng.uniform(0.62, 1.22)
        tint = 1.0 + rng.uniform(-0.04, 0.04, 3)
        bg = np.asarray(img, float) * brightness * tint
        cams.append(dict(
            id=int(ids[i]), brightness=brightness, tint=tint, horizon=horizon,
            bg=Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8)),
            road=np.clip(tone * brightness * tint, 0, 255),
            pref_view=int(rng.choice(3, p=views_p)),
        ))
    return cams


def _render_normal(cam, t, c, v, det, jitter):
    img = cam["bg"].copy()
    _draw_vehicle(img, t, c, v, cam, det, jitter)
    return img


def _render_outlier(kind, cam, t, c, v, det, rng):
    """Bad photo of a vehicle; the picture has to look like its kind."""
    if kind == "empty_road":
        # The detector fired on nothing: road and backdrop only, maybe a
        # manhole cover or a bit of litter to give the crop some content.
        img = cam["bg"].copy()
        d = ImageDraw.Draw(img)
        W, H = img.size
        if rng.random() < 0.6:
            x, y = rng.uniform(0.3, 0.7) * W, rng.uniform(0.6, 0.85) * H
            r = 0.07 * W
            d.ellipse([x - r, y - r * 0.45, x + r, y + r * 0.45],
                      fill=tuple(int(q) for q in cam["road"] * 0.75))
        return img
    if kind == "night":
        img = cam["bg"].copy()
        box = _draw_vehicle(img, t, c, v, cam, det, (rng.uniform(0.9, 1.0), 0, 0), lights=False)
        a = np.asarray(img, float) * rng.uniform(0.08, 0.14)
        a *= np.array([0.8, 0.9, 1.25])  # sodium-free night: bluish cast
        W, H = img.size
        glow = Image.new("L", img.size, 0)
        gd = ImageDraw.Draw(glow)
        if VIEWS[v] == "side":
            spots = [box.p(0.03, _SIDE[TYPES[t]]["head"][1])]
        else:
            lv = 0.70 if TYPES[t] in ("truck", "bus") else _FACE[TYPES[t]]["belt"] + 0.10
            spots = [box.p(0.15, lv), box.p(0.85, lv)]
        r = 0.06 * W
        for x, y in spots:
            gd.ellipse([x - r, y - r, x + r, y + r], fill=255)
            # Horizontal flare streak, as a camera lens does with headlights.
            gd.line([x - 0.35 * W, y, x + 0.35 * W, y], fill=160, width=max(1, int(0.015 * H)))
        glow = np.asarray(glow.filter(ImageFilter.GaussianBlur(0.05 * W)), float) / 255.0
        core = glow > 0.55
        warm = np.array([255, 235, 190]) if VIEWS[v] != "rear" else np.array([255, 60, 40])
        a = a + glow[..., None] * warm * 2.2
        a[core] = np.maximum(a[core], warm * 0.95)
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if kind == "occlusion":
        img = _render_normal(cam, t, c, v, det, (rng.uniform(0.9, 1.0), 0, 0))
        d = ImageDraw.Draw(img)
        W, H = img.size
        if rng.random() < 0.25:
            # A big grey object (sign board / another vehicle) in front.
            x0 = rng.uniform(-0.1, 0.2) * W
            d.rectangle([x0, 0.15 * H, x0 + rng.uniform(0.65, 0.8) * W, H],
                        fill=_shade((120, 125, 130), cam), outline=_shade((60, 60, 60), cam))
        # Branches with leaves hanging in from one side cover most of it.
        side = rng.integers(2)
        for _ in range(rng.integers(3, 6)):
            y0 = rng.uniform(0, H)
            x0 = -5 if side == 0 else W + 5
            x1 = rng.uniform(0.6, 1.0) * W if side == 0 else rng.uniform(0.0, 0.4) * W
            d.line([x0, y0, x1, y0 + rng.uniform(-0.3, 0.3) * H],
                   fill=_shade((85, 60, 35), cam), width=int(rng.integers(3, 7)))
        # Leaves are dense at the tree's side and thin out towards the
        # other side, so part of the vehicle still shows through.
        n = int(rng.integers(150, 220))
        xs = rng.uniform(0, 0.8, n) ** 1.6 / 0.8 ** 0.6
        xs = xs * W if side == 0 else (1 - xs) * W
        ys = rng.uniform(-0.05, 1.05, n) * H
        greens = rng.uniform([25, 85, 20], [85, 165, 70], (n, 3))
        rs = rng.uniform(0.035, 0.08, n) * W
        for x, y, r, g in zip(xs, ys, rs, greens):
            d.ellipse([x - r, y - r * 0.6, x + r, y + r * 0.6], fill=_shade(g, cam))
        return img
    if kind == "wrong_crop":
        img = cam["bg"].copy()
        if rng.random() < 0.5:
            # Zoomed into one corner of the vehicle: a wheel and a bit of body.
            jitter = (rng.uniform(2.6, 3.4), rng.choice([-1, 1]) * rng.uniform(0.8, 1.1),
                      rng.uniform(-0.9, -0.5))
        else:
            # Vehicle tiny and pushed into a corner; the crop is mostly road.
            jitter = (rng.uniform(0.25, 0.35), rng.choice([-1, 1]) * rng.uniform(0.33, 0.38),
                      rng.choice([-1, 1]) * rng.uniform(0.3, 0.36))
        _draw_vehicle(img, t, c, v, cam, det, jitter)
        return img
    raise ValueError(kind)


# --------------------------------------------------------------------------
# Latent factors -> descriptors
# --------------------------------------------------------------------------

# Latent blocks (name, dim).  All block vectors are roughly unit norm so that
# the per-model weights below read as relative strengths.
_BLOCKS = (("color", 12), ("type", 12), ("tview", 12), ("ident", 64), ("camera", 12),
           ("nuis", 16), ("out", 32))
_OFF = {}
_o = 0
for _name, _dim in _BLOCKS:
    _OFF[_name] = slice(_o, _o + _dim)
    _o += _dim
_LATENT_DIM = _o
del _o, _name, _dim

# Relative block strengths per network, per-dim noise, and the extra noise of
# outlier rows (a bad picture gives an erratic descriptor; this keeps the
# ~1000 outliers per kind of the full-size set from forming dense clumps).
_MODEL_WEIGHTS = {
    # Classifier head for colour: colour dominates, a little type leaks in.
    "vdc_color": dict(color=1.0, type=0.25, tview=0.05, ident=0.06, camera=0.20, nuis=0.40,
                      out=1.0, noise=0.45, out_noise=0.6),
    # Classifier head for type: type strong, view medium (front/rear differ).
    "vdc_type": dict(color=0.20, type=1.0, tview=0.55, ident=0.08, camera=0.20, nuis=0.40,
                     out=1.0, noise=0.50, out_noise=0.6),
    # Re-identification net: identity first, then pose/camera, coarse looks.
    "osnet": dict(color=0.35, type=0.30, tview=0.35, ident=0.90, camera=0.35, nuis=0.45,
                  out=0.9, noise=0.50, out_noise=0.9),
    # Generic ImageNet backbone: everything mixed, background matters a lot.
    "efficientnet-b7": dict(color=0.45, type=0.55, tview=0.30, ident=0.30, camera=0.45,
                            nuis=0.40, out=0.8, noise=0.80, out_noise=0.9),
}


def _unit(x, axis=-1):
    return x / np.linalg.norm(x, axis=axis, keepdims=True)


def _orth_plus_features(rng, feats, a, b, dim=12):
    """a * orthonormal rows + b * (centred features in an orthonormal 3-d subspace)."""
    f = np.asarray(feats, float)
    f -= f.mean(0)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return a * q[: len(f)] + b * f @ _unit(rng.normal(size=(f.shape[1], dim)))


def _factor_tables(rng, n_cameras, n_vehicles):
    """Fixed latent vectors for colours, types, views, cameras, vehicles."""
    tb = {}
    # Colours: an orthogonal part keeps all names apart, a perceptual part
    # (lightness, red-green, yellow-blue) makes look-alikes such as
    # white/silver or orange/yellow closer to each other.
    tb["color"] = _orth_plus_features(rng, [_COLOR_PERCEPT[k] for k in _COLOR_NAMES], 0.5, 1.2)
    # Types: the same with shape features (length, height, utility), so
    # sedan/hatchback and truck/bus are neighbours.
    tb["type"] = _orth_plus_features(rng, [_TYPE_SHAPE[k] for k in TYPES], 0.55, 1.0)
    # View offsets are type specific (a sedan's rear is not an SUV's rear)
    # but share a generic front/rear/side direction.
    vgen = _unit(rng.normal(size=(len(VIEWS), 12)))
    tb["tview"] = _unit(0.55 * vgen[None] + _unit(rng.normal(size=(len(TYPES), len(VIEWS), 12))))
    tb["camera"] = _unit(rng.normal(size=(n_cameras, 12)))
    # 64 dims keep 40k random identities well apart from each other.
    tb["ident"] = _unit(rng.normal(size=(n_vehicles, 64))).astype(np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    tb["out_dir"] = q[: len(OUTLIER_KINDS)]
    return tb


def _outlier_latents(rng, tb, kinds, t, c, v, cam, veh, nuis):
    """Latent rows of the outlier images: reflect what their picture shows."""
    n = len(kinds)
    Z = np.zeros((n, _LATENT_DIM))
    black = _COLOR_NAMES.index("black")
    for i in range(n):
        col, typ = tb["color"][c[i]], tb["type"][t[i]]
        tv, ide, cm = tb["tview"][t[i], v[i]], tb["ident"][veh[i]], tb["camera"][cam[i]]
        # Each bad photo is bad in its own way: a large per-image jitter keeps
        # the outliers from forming a tight cluster of their own.
        jit = rng.normal(size=32) / np.sqrt(32) * 0.9
        r12 = _unit(rng.normal(size=12))
        k = OUTLIER_KINDS[kinds[i]]
        if k == "empty_road":  # no vehicle: only background and "road"
            col, typ, tv, ide = 0 * col, 0 * typ, 0 * tv, 0 * ide
            cm = cm * 1.4
        elif k == "night":  # colour pulled to dark, washed out by glare noise
            col = 0.30 * col + 0.40 * tb["color"][black] + 0.55 * r12
            typ, tv, ide, cm = 0.55 * typ, 0.45 * tv, 0.45 * ide, 0.4 * cm
        elif k == "occlusion":  # foliage hides most of the vehicle
            col, typ, tv, ide = 0.35 * col, 0.35 * typ, 0.30 * tv, 0.35 * ide
        elif k == "wrong_crop":  # a corner of the vehicle: type unreadable
            typ = 0.30 * typ + 0.55 * r12
            tv = 0.5 * _unit(rng.normal(size=12))
            col, ide = 0.6 * col, 0.4 * ide
        Z[i, _OFF["color"]] = col
        Z[i, _OFF["type"]] = typ
        Z[i, _OFF["tview"]] = tv
        Z[i, _OFF["ident"]] = ide
        Z[i, _OFF["camera"]] = cm
        Z[i, _OFF["nuis"]] = nuis[i]
        Z[i, _OFF["out"]] = tb["out_dir"][kinds[i]] + jit
    return Z.astype(np.float32)


def _ambiguity(rng, labels, names, confusion, n_images):
    """Per-image look-alike partner label and mixing amount (0 for most)."""
    partners = [[names.index(p) for p in confusion[nm]] for nm in names]
    amount = np.where(rng.random(n_images) < _AMBIGUOUS_SHARE,
                      rng.uniform(0.15, 0.45, n_images), 0.0).astype(np.float32)
    pick = rng.random(n_images)
    to = np.empty(n_images, np.int64)
    for k, ps in enumerate(partners):
        m = labels == k
        to[m] = np.asarray(ps)[(pick[m] * len(ps)).astype(int)]
    return to, amount


def _latent_chunk(s, e, tb, rows, ex, out_pos, out_Z):
    n = e - s
    Z = np.empty((n, _LATENT_DIM), np.float32)
    t, v = rows["type"][s:e], rows["view"][s:e]
    ca, ta = ex["c_amount"][s:e, None], ex["t_amount"][s:e, None]
    Z[:, _OFF["color"]] = ((1 - ca) * tb["color"][rows["color"][s:e]]
                           + ca * tb["color"][ex["c_to"][s:e]])
    Z[:, _OFF["type"]] = (1 - ta) * tb["type"][t] + ta * tb["type"][ex["t_to"][s:e]]
    Z[:, _OFF["tview"]] = (1 - ta) * tb["tview"][t, v] + ta * tb["tview"][ex["t_to"][s:e], v]
    Z[:, _OFF["ident"]] = tb["ident"][rows["vehicle"][s:e]]
    Z[:, _OFF["camera"]] = tb["camera"][rows["camera"][s:e]]
    Z[:, _OFF["nuis"]] = ex["nuis"][s:e]
    Z[:, _OFF["out"]] = 0.0
    op = out_pos[s:e]
    m = op >= 0
    if m.any():
        Z[m] = out_Z[op[m]]
    return Z, m


def _model_descriptors(name, seed, tb, rows, ex, out_pos, out_Z):
    """N x D float32 descriptors of one network, built chunk by chunk."""
    D = MODEL_DIMS[name]
    N = len(rows["type"])
    wcfg = _MODEL_WEIGHTS[name]
    rng = np.random.default_rng([seed, _S_MODEL, list(MODEL_DIMS).index(name)])
    wvec = np.zeros(_LATENT_DIM, np.float32)
    for b, _ in _BLOCKS:
        wvec[_OFF[b]] = wcfg[b]
    W = rng.standard_normal((_LATENT_DIM, D), dtype=np.float32)
    # Reference norm of a normal row's weighted latent; outlier rows are
    # rescaled to it so they differ in direction, not merely in length.
    Zs, ms = _latent_chunk(0, min(N, 4096), tb, rows, ex, out_pos, out_Z)
    zn = np.linalg.norm(Zs[~ms] * wvec, axis=1)
    ref = float(np.median(zn)) if len(zn) else 1.0
    # Scale so each dimension has roughly unit variance.
    scale = np.float32(1.0 / np.sqrt(ref ** 2 + wcfg["noise"] ** 2))
    W *= scale
    sigma = np.float32(wcfg["noise"] * scale)
    sigma_out = np.float32(wcfg["out_noise"] * scale)
    # Own stream for outlier noise, so normal rows do not depend on outliers.
    rng_out = np.random.default_rng([seed, _S_MODEL, list(MODEL_DIMS).index(name), 1])
    row_norm = None
    out = np.empty((N, D), np.float32)
    for s in range(0, N, _CHUNK_ROWS):
        e = min(N, s + _CHUNK_ROWS)
        Z, m = _latent_chunk(s, e, tb, rows, ex, out_pos, out_Z)
        Z *= wvec
        if m.any():
            Z[m] *= ref / np.linalg.norm(Z[m], axis=1, keepdims=True)
        block = out[s:e]
        rng.standard_normal(dtype=np.float32, out=block)
        block *= sigma
        block += Z @ W
        if row_norm is None:
            nn = np.linalg.norm(block[~m], axis=1)
            row_norm = float(np.median(nn)) if len(nn) else float(np.sqrt(D))
        if m.any():
            # Erratic extra noise, then back to a typical length: outliers
            # differ in direction, not merely in norm.
            o = block[m] + sigma_out * rng_out.standard_normal((int(m.sum()), D),
                                                               dtype=np.float32)
            o *= row_norm / np.linalg.norm(o, axis=1, keepdims=True)
            block[m] = o
    return out


# --------------------------------------------------------------------------
# Main entry point
# --------------------------------------------------------------------------


def _plates(rng, n):
    idx = rng.integers(0, len(_PLATE_CHARS), size=(n, 6))
    return ["".join(r) for r in _PLATE_CHARS[idx]]


def _plan(n_vehicles, seed, n_cameras, outlier_rate, size):
    """Decide everything except pixels and descriptor values.

    Returns a dict of per-vehicle arrays (``v_*``), per-row arrays in the
    final (shuffled) CSV order, outlier positions/kinds and relative paths.
    """
    cams = _make_cameras(n_cameras, size, np.random.default_rng([seed, _S_CAMERAS]))
    rv = np.random.default_rng([seed, _S_VEHICLES])
    lo = 10000 if n_vehicles <= 90000 else 1
    vids = np.sort(rv.choice(np.arange(lo, 100000), size=n_vehicles, replace=False))
    folders = 1 + (np.arange(n_vehicles) * 10) // n_vehicles  # id ranges -> folders 1..10
    v_type = rv.choice(len(TYPES), size=n_vehicles, p=_TYPE_FREQ)
    v_color = rv.choice(len(COLORS), size=n_vehicles, p=_COLOR_FREQ)
    v_plate = _plates(rv, n_vehicles)
    v_plate_style = rv.choice(3, size=n_vehicles, p=[0.7, 0.2, 0.1])
    v_stripe = np.where(rv.random(n_vehicles) < 0.15,
                        rv.integers(0, len(_STRIPES), n_vehicles), -1)
    v_rack = rv.random(n_vehicles) < 0.2
    v_wheel = rv.integers(0, len(_HUBS), n_vehicles)
    rv.integers(0, 2, n_vehicles)  # once a picture-pool variant; drawn still, so later draws stay put
    # 4 + Binomial(12, p): range 4..16 with mean 10.2.
    n_photos = 4 + rv.binomial(12, (MEAN_PHOTOS_PER_VEHICLE - 4) / 12, n_vehicles)

    rp = np.random.default_rng([seed, _S_PHOTOS])
    N = int(n_photos.sum())
    veh = np.repeat(np.arange(n_vehicles), n_photos)
    start = np.repeat(np.cumsum(n_photos) - n_photos, n_photos)
    # Each vehicle passes 2-5 cameras; each camera mostly sees one direction.
    n_vcams = np.minimum(rp.integers(2, 6, n_vehicles), n_photos)
    vcams = np.argsort(rp.random((n_vehicles, n_cameras)), axis=1)[:, :5]
    pick = (rp.random(N) * n_vcams[veh]).astype(int)
    camera = vcams[veh, pick]
    pref = np.array([c["pref_view"] for c in cams])[camera]
    view = np.where(rp.random(N) < 0.7, pref, rp.integers(0, 3, N))
    # Serial numbers increase within a vehicle's folder and stay 5-digit.
    inc = rp.integers(1, 2000, N)
    csum = np.cumsum(inc)
    serial = rp.integers(0, 60000, n_vehicles)[veh] + csum - (csum[start] - inc[start])
    facing = np.where(rp.random(N) < 0.5, -1, 1)
    # Outliers: exact count, kinds balanced.
    n_out = int(round(outlier_rate * N))
    if outlier_rate > 0 and N >= 50:
        n_out = max(n_out, 1)
    out_idx = rp.choice(N, size=n_out, replace=False)
    out_kind = np.arange(n_out) % len(OUTLIER_KINDS)
    rp.shuffle(out_kind)
    # Shuffle rows: a real export is not grouped by vehicle.
    perm = rp.permutation(N)
    inv = np.empty(N, np.int64)
    inv[perm] = np.arange(N)
    out_idx = inv[out_idx]  # positions in the shuffled order
    order = np.argsort(out_idx)
    out_idx, out_kind = out_idx[order], out_kind[order]
    veh, camera, view, serial, facing = (a[perm] for a in (veh, camera, view, serial, facing))
    out_pos = np.full(N, -1, np.int64)
    out_pos[out_idx] = np.arange(n_out)
    kind_of = np.full(N, -1, np.int64)
    kind_of[out_idx] = out_kind
    cam_ids = np.array([c["id"] for c in cams])
    rel = [
        f"{folders[i]}/{vids[i]:05d}/{vids[i]:06d}_c{cam_ids[cm]:03d}_{sr:05d}.jpg"
        for i, cm, sr in zip(veh.tolist(), camera.tolist(), serial.tolist())
    ]
    return dict(
        N=N, n_vehicles=n_vehicles, cams=cams, cam_ids=cam_ids, vids=vids, folders=folders,
        v_type=v_type, v_color=v_color, v_plate=v_plate, v_plate_style=v_plate_style,
        v_stripe=v_stripe, v_rack=v_rack, v_wheel=v_wheel,
        vehicle=veh, camera=camera, view=view, facing=facing,
        type=v_type[veh], color=v_color[veh],
        out_idx=out_idx, out_kind=out_kind, out_pos=out_pos, kind_of=kind_of, rel=rel,
    )


# Every photo is drawn from scratch for its own vehicle (colour, type, plate,
# wheels, stripe, rack) on its camera's backdrop: about 1 ms of CPU a picture,
# JPEG included, so the full-scale demo needs no shared pictures. (Deriving a
# vehicle's photos from one drawing per view, pasted scaled and exposed, was
# measured slower: the RGBA resize and paste cost more than the drawing.)
_PARALLEL_ROWS = 20000  # from this many images on, two processes draw the pictures
_TASK_ROWS = 2000  # rows (whole vehicles) per task

_W: dict = {}  # a drawing process's cameras and seed


def _init_pictures(parent_pid, cams, seed):
    from .processes import _exit_with_parent

    _exit_with_parent(parent_pid)  # a worker exits with the generator, killed or not
    _W.update(cams=cams, seed=seed)


def _draw_rows(rows):
    """Draw and write the pictures of some rows; returns how many were written."""
    cams, seed = _W["cams"], _W["seed"]
    for r, dst, t, c, v, cm, kind, det in rows:
        irng = np.random.default_rng([seed, _S_IMAGE, r])
        if kind >= 0:
            img = _render_outlier(OUTLIER_KINDS[kind], cams[cm], t, c, v, det, irng)
        else:
            jit = (irng.uniform(0.93, 1.03), irng.uniform(-0.03, 0.03), irng.uniform(-0.03, 0.03))
            img = _render_normal(cams[cm], t, c, v, det, jit)
        if os.path.lexists(dst):
            os.unlink(dst)  # never write through a hard link of an earlier (pooled) run
        img.save(dst, "JPEG", quality=_JPEG_QUALITY)
    return len(rows)


def _write_pictures(plan, raw, seed, progress, n_jobs=2):
    """Draw one JPEG per row, each of its own vehicle; returns the number written.

    From ``_PARALLEL_ROWS`` images on, runs of ``_TASK_ROWS`` rows are drawn
    by ``n_jobs`` processes. A picture depends only on the seed and its row.
    """
    N, cams = plan["N"], plan["cams"]
    for f, vid in set(zip(plan["folders"].tolist(), plan["vids"].tolist())):
        (raw / str(f) / f"{vid:05d}").mkdir(parents=True, exist_ok=True)
    veh = plan["vehicle"]
    rows = []
    for r in range(N):
        i = int(veh[r])
        det = dict(plate=plan["v_plate"][i], plate_style=int(plan["v_plate_style"][i]),
                   stripe=int(plan["v_stripe"][i]), rack=bool(plan["v_rack"][i]),
                   wheel=int(plan["v_wheel"][i]), facing=int(plan["facing"][r]))
        rows.append((r, str(raw / plan["rel"][r]), int(plan["type"][r]), int(plan["color"][r]),
                     int(plan["view"][r]), int(plan["camera"][r]), int(plan["kind_of"][r]), det))
    done = 0
    if n_jobs > 1 and N >= _PARALLEL_ROWS:
        from concurrent.futures import ProcessPoolExecutor

        from .processes import SPAWN, plain_main

        tasks = [rows[s:s + _TASK_ROWS] for s in range(0, N, _TASK_ROWS)]
        with ProcessPoolExecutor(n_jobs, mp_context=SPAWN, initializer=_init_pictures,
                                 initargs=(os.getpid(), cams, seed)) as pool:
            with plain_main():  # the workers start with the first task
                results = pool.map(_draw_rows, tasks)
            for n in results:
                done += n
                if progress is not None:
                    progress(done, N)
        return done
    _W.update(cams=cams, seed=seed)
    step = max(1, min(N // 200, 500))
    for s in range(0, N, step):
        done += _draw_rows(rows[s:s + step])
        if progress is not None:
            progress(done, N)
    return done


def _iter_descriptors(plan, seed, n_cameras):
    """Yield (model name, N x D float32 array), one model at a time."""
    rl = np.random.default_rng([seed, _S_LATENT])
    tb = _factor_tables(rl, n_cameras, plan["n_vehicles"])
    N = plan["N"]
    nuis = rl.standard_normal((N, 16), dtype=np.float32) / np.float32(4.0)
    c_to, c_amount = _ambiguity(rl, plan["color"], _COLOR_NAMES, _COLOR_CONFUSION, N)
    t_to, t_amount = _ambiguity(rl, plan["type"], TYPES, _TYPE_CONFUSION, N)
    ex = dict(nuis=nuis, c_to=c_to, c_amount=c_amount, t_to=t_to, t_amount=t_amount)
    oi = plan["out_idx"]
    out_Z = _outlier_latents(rl, tb, plan["out_kind"], plan["type"][oi], plan["color"][oi],
                             plan["view"][oi], plan["camera"][oi], plan["vehicle"][oi],
                             nuis[oi])
    for name in MODEL_DIMS:
        yield name, _model_descriptors(name, seed, tb, plan, ex, plan["out_pos"], out_Z)


def generate(
    out_dir,
    n_vehicles: int = 600,
    seed: int = 0,
    image_size: tuple = (192, 144),
    progress: Optional[Callable[[int, int], None]] = None,
    n_cameras: int = 40,
    outlier_rate: float = 0.01,
    n_jobs: int = 2,
) -> dict:
    """Write a synthetic VeRi-Wild-like data set with planted structure.

    Parameters
    ----------
    out_dir : str or path-like
        Target folder; created if missing.  Files of an earlier run with the
        same layout are overwritten; unrelated stale files are left alone.
    n_vehicles : int, default 600
        Number of distinct vehicles (1..99999).  Each gets 4-16 photos (mean
        ~10.2), so 600 vehicles give ~6,100 images and 40,671 give ~416k.
    seed : int, default 0
        Seed for every random choice; same seed -> identical output.
    image_size : (int, int), default (192, 144)
        JPEG size as (width, height).
    progress : callable, optional
        ``progress(done, total)`` is called every ~0.5 % of the images while
        the pictures are written (the slow part), and once with
        ``done == total``.
    n_cameras : int, default 40
        Number of distinct cameras (ids drawn from 1..174).
    outlier_rate : float, default 0.01
        Share of images turned into planted outliers.
    n_jobs : int, default 2
        Processes drawing the pictures from 20,000 images on.

    Returns
    -------
    dict
        ``n_images``, ``n_vehicles``, ``n_outliers``, ``outliers_by_kind``,
        ``n_pictures_rendered`` (= ``n_images``: every photo is drawn for
        its own vehicle and is its own file, at every size), ``seconds``
        (wall time) and ``paths`` (``out_dir``, ``descriptors``
        mapping model name -> pickle path, ``images_paths_csv``,
        ``truth_csv``, ``raw_data``).
    """
    t_start = time.perf_counter()
    if not 1 <= n_vehicles <= 99999:
        raise ValueError("n_vehicles must be in 1..99999 (5-digit vehicle ids)")
    if not 2 <= n_cameras <= _CAMERA_ID_MAX:
        raise ValueError(f"n_cameras must be in 2..{_CAMERA_ID_MAX}")
    size = (int(image_size[0]), int(image_size[1]))
    out = Path(out_dir)
    (out / "descriptors").mkdir(parents=True, exist_ok=True)
    raw = out / "raw_data"

    plan = _plan(n_vehicles, seed, n_cameras, outlier_rate, size)
    N = plan["N"]
    n_rendered = _write_pictures(plan, raw, seed, progress, n_jobs)

    desc_paths = {}
    for name, arr in _iter_descriptors(plan, seed, n_cameras):
        p = out / "descriptors" / f"{name}.pickle"
        write_pickle(arr, p)
        desc_paths[name] = str(p)
        del arr  # keep one model in memory at a time

    paths_csv = out / "images_paths.csv"
    with open(paths_csv, "w", newline="") as f:
        f.write("paths\n")
        f.writelines(f"{FOREIGN_ROOT}/{p}\n" for p in plan["rel"])
    truth_csv = out / "truth.csv"
    veh, kind_of, cam_ids = plan["vehicle"], plan["kind_of"], plan["cam_ids"]
    with open(truth_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "vehicle_id", "type", "color", "view", "camera", "is_outlier",
                    "outlier_kind", "folder", "rel_path"])
        for r in range(N):
            i, k = int(veh[r]), int(kind_of[r])
            w.writerow([r, int(plan["vids"][i]), TYPES[plan["type"][r]],
                        _COLOR_NAMES[plan["color"][r]], VIEWS[plan["view"][r]],
                        int(cam_ids[plan["camera"][r]]), int(k >= 0),
                        OUTLIER_KINDS[k] if k >= 0 else "", int(plan["folders"][i]),
                        plan["rel"][r]])

    out_kind = plan["out_kind"]
    return dict(
        n_images=N,
        n_vehicles=int(n_vehicles),
        n_outliers=int(len(out_kind)),
        outliers_by_kind={k: int((out_kind == j).sum()) for j, k in enumerate(OUTLIER_KINDS)},
        n_pictures_rendered=int(n_rendered),
        seconds=round(time.perf_counter() - t_start, 2),
        paths=dict(
            out_dir=str(out),
            descriptors=desc_paths,
            images_paths_csv=str(paths_csv),
            truth_csv=str(truth_csv),
            raw_data=str(raw),
        ),
    )
