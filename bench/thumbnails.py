"""The thumbnail stage's decoders against each other, on both cores, in the same run.

Pillow's JPEG draft mode (DCT-domain downscaling by 1/2, 1/4, 1/8), simplejpeg
(libjpeg-turbo's scaling by eighths) and pyvips' shrink-on-load each make the
loader's thumbnails (:func:`lib.images.make_thumbnail`: decode, fit the box,
encode, body colour) for the same random sample of a data folder's images,
through the loader's own pool of ``n_jobs`` processes; every decoder's pixels are
encoded by the loader's one encoder, so the decoders are what differs. Rounds alternate the
decoders, so a busy moment of a shared machine falls on each alike; the median
round is reported, and extrapolated to every image of the folder.

    python -m bench --parts thumbnails --thumbs-data /path/to/data
"""
from __future__ import annotations

import os
import time
from collections import Counter

import numpy as np
from PIL import Image

from lib import descriptors, images

FULL = 414_575  # the real set's readable images: the scale the stage's target is set at
# what the loader keeps is first; Pillow is every way's fallback for what the first decoder refuses
WAYS = {"simplejpeg": images.DEFAULT_DECODERS, "pillow": ("pillow",)}


def decode_pyvips(data, size):
    """A thumbnail's RGB pixels with libvips' ``thumbnail_buffer`` (shrink-on-load), as the other decoders."""
    import pyvips

    pyvips.concurrency_set(1)  # one thread per worker process, as the other decoders
    head = pyvips.Image.new_from_buffer(data, "", access="sequential")
    if head.width * head.height > images.MAX_PIXELS:
        raise images.TooLarge
    im = pyvips.Image.thumbnail_buffer(data, size, height=size)
    if im.hasalpha():
        im = im.flatten()
    if im.bands != 3:
        im = im.colourspace("srgb")
    return np.ndarray(buffer=im.write_to_memory(), dtype=np.uint8, shape=(im.height, im.width, 3))


def measure(data_dir, sample=40_000, rounds=3, n_jobs=2, random_state=0):
    """Seconds per image of each decoder, and how far its thumbnails agree with Pillow's.

    Returns
    -------
    dict with ``images`` (of the folder), ``sample``, ``rounds``, ``n_jobs``,
    ``source`` (the most common image size) and ``ways``: per decoder
    ``ms_per_image`` (median round, wall, on ``n_jobs`` processes), ``rounds_ms``,
    ``stage_s`` (extrapolated to every image), ``full_s`` (to FULL images), ``same_status`` and
    ``same_colour`` (shares of the sample equal to Pillow's).
    """
    ways = {**WAYS, "pyvips": (decode_pyvips, "pillow")}
    data_dir = os.fspath(data_dir)
    paths = descriptors.read_paths(os.path.join(data_dir, "images_paths.csv")).paths
    rng = np.random.default_rng(random_state)
    pick = np.sort(rng.choice(len(paths), min(sample, len(paths)), replace=False))
    rels = [paths[i] for i in pick]
    root = os.path.join(data_dir, descriptors.IMAGE_ROOT)
    for rel in rels:  # the page cache warm for every decoder alike
        p = descriptors.resolve_image(root, rel)
        if p and os.path.isfile(p):
            with open(p, "rb") as f:
                f.read()
    results, times = {}, {name: [] for name in ways}
    for r in range(rounds):
        order = list(ways)[r % len(ways):] + list(ways)[:r % len(ways)]
        for name in order:
            t = time.perf_counter()
            got = [x for batch in images.iter_thumbnails(root, rels, n_jobs=n_jobs, decoders=ways[name])
                   for x in batch]
            times[name].append((time.perf_counter() - t) / len(rels) * 1000)
            results[name] = got
    base = results["pillow"]
    names = [[images.color_name(c) if s == "ok" else None for s, _, c in results[n]] for n in ways]
    sizes = Counter()
    for rel in rels[:200]:
        try:
            with Image.open(descriptors.resolve_image(root, rel)) as im:
                sizes[im.size] += 1
        except Exception:  # a broken image of the set: not a size
            pass
    out = {"images": len(paths), "sample": len(rels), "rounds": rounds, "n_jobs": n_jobs,
           "source": "×".join(map(str, sizes.most_common(1)[0][0])) if sizes else "?", "ways": {}}
    pillow_names = names[list(ways).index("pillow")]
    for name, nm in zip(ways, names):
        ms = float(np.median(times[name]))
        out["ways"][name] = {
            "ms_per_image": ms, "rounds_ms": times[name], "stage_s": ms * len(paths) / 1000,
            "full_s": ms * FULL / 1000,
            "same_status": float(np.mean([a[0] == b[0] for a, b in zip(results[name], base)])),
            "same_colour": float(np.mean([a == b for a, b in zip(nm, pillow_names)]))}
    return out


def section(res):
    """The Markdown section of the report."""
    ways = res["ways"]
    best = min(ways, key=lambda n: ways[n]["ms_per_image"])
    L = ["## Thumbnails: decoders\n",
         f"The loader's thumbnail (decode, fit {images.THUMB_SIZE} px, JPEG q{images.THUMB_QUALITY}, body colour) "
         f"by each decoder on the same {res['sample']:,} random images of {res['images']:,} (mostly "
         f"{res['source']} JPEG crops), through the loader's pool of {res['n_jobs']} processes, {res['rounds']} "
         f"alternating rounds, median round; the stage extrapolated to every image of the folder and to "
         f"{FULL:,} images. Target (issue 15): the thumbnail stage ≤ 120 s at {FULL:,} images.\n",
         "| decoder | ms per image (wall) | rounds | "
         + ("" if res["images"] == FULL else f"stage at {res['images']:,} images, s | ")
         + f"stage at {FULL:,} images, s | same status as Pillow | same colour name as Pillow |",
         "|---|---:|---|---:|" + ("" if res["images"] == FULL else "---:|") + "---:|---:|"]
    for name, w in sorted(ways.items(), key=lambda kv: kv[1]["ms_per_image"]):
        bold = "**" if name == best else ""
        L.append(f"| {name} | {bold}{w['ms_per_image']:.3f}{bold} | "
                 f"{', '.join(f'{x:.3f}' for x in w['rounds_ms'])} | "
                 + ("" if res["images"] == FULL else f"{w['stage_s']:.0f} | ")
                 + f"{bold}{w['full_s']:.0f}{bold} | {w['same_status']:.3f} | {w['same_colour']:.3f} |")
    kept = next(iter(WAYS))
    L.append(f"\nThe loader decodes with {kept} (Pillow for what it cannot read): "
             + ("the winner of this run.\n" if best == kept else f"**{best} won this run**; see the note.\n"))
    return L
