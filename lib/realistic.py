"""Descriptors shaped like the real set, for tests and ``python -m lib demo --realistic``.

The demo's descriptors are Gaussian blobs, where every detector sees the same
planted outliers and every clustering looks right. Real descriptors are not
like that, and this generator makes what they have:

* ``osnet``: re-identification-like, dominated by the vehicle's identity
  (photos of one car are close, classes barely show), L2-normalised rows;
* ``efficientnet-b7``: CNN-pooling-like, non-negative and sparse (a ReLU of
  class, view and camera factors; about two thirds of the values are 0);
* ``vdc_type``: a type classifier's head, clear but unbalanced class clusters
  (shares 45/25/15/8/5/2 %) shifted by the view;
* ``noise``: a model with no structure at all (every row independent noise);
* bursts: some passes are recorded as 3-5 near-identical frames (one camera,
  one moment): their rows are copies of one row plus a jitter far below the
  distance between two photos of the same vehicle, in every model;
* oddities: about 1 % of the images are odd in exactly one structured model
  (a vehicle kind no class covers, a capture that resembles nothing, a rare
  activation pattern) and ordinary in the others;
* broken rows: a few rows of one model are NaN or inf.

``truth.csv`` holds, per image: ``image_id, vehicle_id, cls, burst`` (the
burst's id, -1 if none), ``odd_in`` (the model the oddity is visible in, or
empty) and ``broken_in`` (the model whose row is non-finite, or empty). The
loader never reads it.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .demo import FOREIGN_ROOT, write_pickle

MODELS = ("osnet", "efficientnet-b7", "vdc_type", "noise")
DIMS = {"osnet": 64, "efficientnet-b7": 128, "vdc_type": 32, "noise": 32}  # test sizes
REAL_DIMS = {"osnet": 512, "efficientnet-b7": 2560, "vdc_type": 512, "noise": 128}
CLASS_SHARES = np.array([0.45, 0.25, 0.15, 0.08, 0.05, 0.02])
ODD_MODELS = ("osnet", "efficientnet-b7", "vdc_type")  # models with structure to be odd in
BURST_VEHICLE_SHARE = 0.2   # vehicles with one pass recorded as a burst
BURST_FRAMES = (3, 5)       # frames of a burst, both ends included
ODD_SHARE = 0.01
BROKEN_ROWS = 0.001
N_CAMERAS = 30


def plan(n_vehicles, seed=0):
    """Who is in each row: vehicle, class, camera, view, burst, oddity, broken row.

    Returns
    -------
    dict of numpy arrays, one entry per image (row), plus ``n_vehicles``.
    """
    rng = np.random.default_rng(seed)
    cls_v = rng.choice(len(CLASS_SHARES), n_vehicles, p=CLASS_SHARES)
    photos = rng.integers(4, 17, n_vehicles)
    vehicle = np.repeat(np.arange(n_vehicles), photos)
    n = len(vehicle)
    camera = rng.integers(0, N_CAMERAS, n)
    view = rng.integers(0, 3, n)
    # a burst: one photo of the vehicle repeated as several frames right after it
    burst_of = np.full(n, -1)
    base = np.arange(n)
    bursty = rng.random(n_vehicles) < BURST_VEHICLE_SHARE
    first = np.concatenate([[0], np.cumsum(photos)[:-1]])
    extra_rows = []
    for b, v in enumerate(np.flatnonzero(bursty)):
        src = first[v] + rng.integers(0, photos[v])
        frames = rng.integers(BURST_FRAMES[0], BURST_FRAMES[1] + 1)
        burst_of[src] = b
        extra_rows += [(src, b)] * (frames - 1)
    if extra_rows:
        src_rows, bids = np.array(extra_rows).T
        order = np.argsort(np.concatenate([np.arange(n), src_rows]), kind="stable")  # frames follow their source
        vehicle = np.concatenate([vehicle, vehicle[src_rows]])[order]
        camera = np.concatenate([camera, camera[src_rows]])[order]
        view = np.concatenate([view, view[src_rows]])[order]
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))  # new row of every old one
        base = position[np.concatenate([base, src_rows])[order]]
        burst_of = np.concatenate([burst_of, bids])[order]
    n = len(vehicle)
    # oddities: images outside bursts, each odd in one structured model
    candidates = np.flatnonzero(burst_of < 0)
    odd = rng.choice(candidates, int(round(ODD_SHARE * n)), replace=False)
    odd_in = np.full(n, -1)
    odd_in[odd] = rng.integers(0, len(ODD_MODELS), len(odd))
    rest = np.setdiff1d(candidates, odd)
    broken = rng.choice(rest, max(1, int(round(BROKEN_ROWS * n))), replace=False)
    broken_in = np.full(n, -1)
    broken_in[broken] = rng.integers(0, len(MODELS), len(broken))
    return dict(vehicle=vehicle, cls=cls_v[vehicle], camera=camera, view=view, base=base, burst=burst_of,
                odd_in=odd_in, broken_in=broken_in, n_vehicles=n_vehicles)


def descriptors(p, dims=None, seed=0):
    """Every model's descriptor matrix for a :func:`plan`, as ``{model: float32 array}``."""
    dims = dict(DIMS, **(dims or {}))
    n = len(p["vehicle"])
    out = {}
    for m_i, model in enumerate(MODELS):
        rng = np.random.default_rng([seed, m_i])
        X = _model_rows(model, dims[model], p, rng)
        # a burst's frames: its first frame's row plus a small jitter
        frames = p["base"] != np.arange(n)
        jitter = 0.05 * np.median(np.linalg.norm(X - X.mean(axis=0), axis=1)) / np.sqrt(X.shape[1])
        X[frames] = X[p["base"][frames]] + rng.normal(0, jitter, (int(frames.sum()), X.shape[1]))
        if model == "osnet":
            X /= np.linalg.norm(X, axis=1, keepdims=True)
        elif model == "efficientnet-b7":
            np.maximum(X, 0, out=X)
        odd = p["odd_in"] == (ODD_MODELS.index(model) if model in ODD_MODELS else -2)
        if odd.any():
            X[odd] = _odd_rows(model, X, int(odd.sum()), rng)
        bad = np.flatnonzero(p["broken_in"] == m_i)
        X[bad[::2]] = np.nan
        X[bad[1::2], 0] = np.inf
        out[model] = X.astype(np.float32)
    return out


def _model_rows(model, d, p, rng):
    n, nv = len(p["vehicle"]), p["n_vehicles"]
    k = len(CLASS_SHARES)
    if model == "noise":
        return rng.standard_normal((n, d))
    if model == "vdc_type":
        centres = rng.standard_normal((k, d)) * 3.0
        views = rng.standard_normal((3, d)) * 0.8
        return centres[p["cls"]] + views[p["view"]] + rng.standard_normal((n, d)) * 0.7
    if model == "osnet":
        # identity spread over many dims, as re-ID features are, with a decaying spectrum
        identity = rng.standard_normal((nv, d)) * (np.arange(1, d + 1) ** -0.5 * 3)
        cams = rng.standard_normal((N_CAMERAS, d)) * 0.35
        classes = rng.standard_normal((k, d)) * 0.4
        return identity[p["vehicle"]] + cams[p["camera"]] + classes[p["cls"]] + rng.standard_normal((n, d)) * 0.35
    # efficientnet-b7: an ImageNet network's pooled features, weakly about the vehicle
    classes = rng.standard_normal((k, d)) * 1.0
    views = rng.standard_normal((3, d)) * 0.8
    cams = rng.standard_normal((N_CAMERAS, d)) * 0.6
    vehicle = rng.standard_normal((nv, d)) * 0.6
    h = (classes[p["cls"]] + views[p["view"]] + cams[p["camera"]] + vehicle[p["vehicle"]]
         + rng.standard_normal((n, d)) * 0.6)
    return h - 0.6  # the ReLU after it leaves about two thirds of the values at 0


def _odd_rows(model, X, m, rng):
    """Rows that are odd in ``model`` and at an ordinary scale for it."""
    d = X.shape[1]
    if model == "osnet":  # a capture that resembles no vehicle: a random direction
        R = rng.standard_normal((m, d))
        return R / np.linalg.norm(R, axis=1, keepdims=True)
    if model == "vdc_type":  # a vehicle kind no class covers, at the classes' own spread
        spread = np.linalg.norm(X - X.mean(axis=0), axis=1)
        R = rng.standard_normal((m, d))
        return X.mean(axis=0) + R / np.linalg.norm(R, axis=1, keepdims=True) * np.quantile(spread, 0.9) * 1.3
    # efficientnet-b7: an ordinary row with a few channels strongly on that nobody else uses
    rows = X[rng.integers(0, len(X), m)].copy()
    hot = rng.integers(0, d, (m, 6))
    scale = np.quantile(X[X > 0], 0.99) * 1.5
    np.put_along_axis(rows, hot, scale, axis=1)
    return rows


def generate(out_dir, n_vehicles=300, seed=0, dims=None, pictures=True):
    """Write a dataset folder in the real layout with descriptors shaped like the real set.

    Parameters
    ----------
    out_dir : str or Path
    n_vehicles : int
        About 10.7 images each (bursts add frames).
    seed : int
    dims : dict, optional
        Model -> dims, over :data:`DIMS` (e.g. :data:`REAL_DIMS`).
    pictures : bool
        Write a small JPEG per image (flat colour, class-shaped box); without them
        every image's status is ``missing`` and the loader uses placeholders.

    Returns
    -------
    dict
        ``n_images``, ``n_vehicles``, ``n_bursts``, ``n_odd``, ``n_broken``.
    """
    out = Path(out_dir)
    (out / "descriptors").mkdir(parents=True, exist_ok=True)
    p = plan(n_vehicles, seed)
    for model, X in descriptors(p, dims, seed).items():
        write_pickle(X, out / "descriptors" / f"{model}.pickle")
    n = len(p["vehicle"])
    rel = [f"{v % 10 + 1}/{v:05d}/{v:05d}_c{c:03d}_{i:06d}.jpg"
           for i, (v, c) in enumerate(zip(p["vehicle"].tolist(), p["camera"].tolist()))]
    with open(out / "images_paths.csv", "w") as f:
        f.write("paths\n")
        f.writelines(f"{FOREIGN_ROOT}/{r}\n" for r in rel)
    broken_names = ["" if j < 0 else MODELS[j] for j in p["broken_in"]]
    odd_names = ["" if j < 0 else ODD_MODELS[j] for j in p["odd_in"]]
    with open(out / "truth.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "vehicle_id", "cls", "burst", "odd_in", "broken_in", "rel_path"])
        for i in range(n):
            w.writerow([i, int(p["vehicle"][i]), int(p["cls"][i]), int(p["burst"][i]), odd_names[i], broken_names[i], rel[i]])
    if pictures:
        _write_pictures(out / "raw_data", rel, p, seed)
    return dict(n_images=n, n_vehicles=n_vehicles, n_bursts=int(p["burst"].max()) + 1,
                n_odd=int((p["odd_in"] >= 0).sum()), n_broken=int((p["broken_in"] >= 0).sum()))


def _write_pictures(raw, rel, p, seed):
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed, 99])
    colours = rng.integers(20, 236, (p["n_vehicles"], 3))
    for i, r in enumerate(rel):
        path = raw / r
        path.parent.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", (64, 48), (96, 96, 96))
        w = 20 + 6 * int(p["cls"][i])
        ImageDraw.Draw(img).rectangle([32 - w // 2, 12, 32 + w // 2, 40],
                                      fill=tuple(int(c) for c in colours[p["vehicle"][i]]))
        img.save(path, quality=80)
