"""One search box for every identifier a user holds: image ID, file name, path, vehicle ID.

:func:`find` turns what was typed into images, saying how it read it, so
that a page shows the answer; the app keeps the text in the link (``?image=``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_MATCHES = 50  # ambiguous input lists at most this many matches

_VEHICLE = re.compile(r"^(?:v|vehicle)\s*[:#]?\s*(\d+)$", re.IGNORECASE)
_IMAGE = re.compile(r"^(?:#|id\s*[:#]?\s*|image\s*[:#]?\s*)(\d+)$", re.IGNORECASE)


@dataclass
class Found:
    """What :func:`find` read and the images it found.

    Attributes
    ----------
    kind : str
        ``image`` (one image), ``vehicle`` (all photos of one vehicle),
        ``matches`` (several images the text could mean) or ``none``.
    image_ids : list of int
        The images, by ID.
    message : str
        One line for the user: how the text was read, or why nothing matched.
    vehicle_id : str or None
        For ``vehicle``; for ``image``, the image's vehicle.
    also : str or None
        Another reading of the same text (a number that is an image ID and a
        vehicle ID), as the text to search for it.
    """

    kind: str
    image_ids: list = field(default_factory=list)
    message: str = ""
    vehicle_id: str | None = None
    also: str | None = None


def _vehicle(ex, vehicle_id):
    return [r[0] for r in ex.rows("SELECT image_id FROM images WHERE vehicle_id = ? ORDER BY image_id",
                                  [vehicle_id])]


def find(ex, text, limit=MAX_MATCHES):
    """Read ``text`` as an image ID, a vehicle ID, a file name or a path, and find its images.

    Rules, first match wins:

    1. ``v12345`` / ``vehicle 12345``: that vehicle; ``#12`` / ``id 12``: that image.
    2. A whole number: the image with that ID; if it is also a vehicle ID,
       :attr:`Found.also` says how to ask for the vehicle; past the last
       image ID, the vehicle. A number with a leading zero (``04256``) is a
       vehicle ID, as folders are written.
    3. A path or file name (``\\`` or ``/``, any prefix another machine wrote,
       as ``images_paths.csv`` does; the extension optional): the images
       whose stored path it ends with, or that end with it.
    4. Otherwise any path containing the text (up to ``limit``).

    Parameters
    ----------
    ex : lib.queries.Explorer
    text : str
    limit : int
        Most matches listed for an ambiguous text.

    Returns
    -------
    Found
    """
    t = re.sub("/+", "/", str(text).strip().strip("\"'").replace("\\", "/"))
    if not t:
        return Found("none", message="type an image ID, a file name, a path or a vehicle ID (v12345)")
    if "\x00" in t:
        return Found("none", message="that text holds a NUL character; nothing matches it")
    vm = _VEHICLE.match(t)
    vid = vm.group(1) if vm else (t if re.fullmatch(r"0[0-9]+", t) else None)
    if vid is not None:
        for cand in dict.fromkeys([vid, vid.lstrip("0").zfill(5)]):  # folders are five digits: v42 is 00042
            ids = _vehicle(ex, cand)
            if ids:
                return Found("vehicle", ids, f"vehicle {cand}: {len(ids)} photo{'s' * (len(ids) != 1)}", cand)
        return Found("none", message=f"no vehicle {vid[:24]} in this database")
    im = _IMAGE.match(t)
    digits = im.group(1) if im else (t if re.fullmatch(r"[0-9]+", t) else None)
    if digits is None and re.fullmatch(r"-[0-9]+", t):
        return Found("none", message=f"no image {t[:24]}: IDs run from 0 to {ex.n_images - 1:,}")
    if digits is not None:
        if not im and len(digits) <= 5 and int(digits) >= ex.n_images and _vehicle(ex, digits.zfill(5)):
            return find(ex, f"v{digits}", limit)  # no such image, but such a vehicle
        if len(digits) > 12 or not 0 <= int(digits) < ex.n_images:
            return Found("none", message=f"no image {digits[:24]}: IDs run from 0 to {ex.n_images - 1:,}")
        image_id = int(digits)
        vid = digits.zfill(5)  # "1234" may mean image 1234 or the folder 01234
        also = f"v{vid}" if not im and len(digits) <= 5 and _vehicle(ex, vid) else None
        return Found("image", [image_id], f"image {image_id}", ex.image(image_id)["vehicle_id"], also)
    return _by_path(ex, t, limit)


def _by_path(ex, t, limit):
    name = t.rsplit("/", 1)[-1]
    # the stored path is relative (raw_data/...): the typed one may carry any prefix, or be a name alone,
    # with or without its extension
    ids = [r[0] for r in ex.rows(
        r"""SELECT image_id FROM images
            WHERE path = ? OR suffix(?, '/' || path) OR suffix(path, '/' || ?)
               OR (? AND suffix(regexp_replace(path, '\.[^./]*$', ''), '/' || ?))
            ORDER BY image_id LIMIT ?""", [t, t, t, "." not in name, t, limit + 1])]
    how = "path"
    if not ids:
        ids = [r[0] for r in ex.rows("SELECT image_id FROM images WHERE contains(path, ?) ORDER BY image_id LIMIT ?",
                                     [t, limit + 1])]
        how = "paths containing it"
    if not ids:
        return Found("none", message=f"nothing matches {t[:60]!r}: not an image ID, vehicle ID, file name or path "
                                     "of this database")
    if len(ids) == 1:
        return Found("image", ids, f"image {ids[0]} ({how})", ex.image(ids[0])["vehicle_id"])
    more = len(ids) > limit
    ids = ids[:limit]
    return Found("matches", ids, f"{'more than ' if more else ''}{len(ids)} images match {t[:60]!r} ({how}); "
                                 "pick one" + (", or type more of it" if more else ""))


def vehicle_clusters(ex, vehicle_id):
    """Per model, the clusters the vehicle's photos fall in: does the car stay together?

    Returns
    -------
    pandas.DataFrame
        ``model, clusters, photos, largest_share``: the number of distinct
        clusters, the photos, and the share of photos in the commonest one.
    """
    return ex.df("""WITH a AS (SELECT a.model, a.cluster, count(*) AS n FROM assignments a
                               JOIN images i USING (image_id) WHERE i.vehicle_id = ? GROUP BY ALL)
                    SELECT model, count(*) AS clusters, sum(n)::INTEGER AS photos,
                           max(n) / sum(n) AS largest_share
                    FROM a GROUP BY model ORDER BY largest_share DESC, model""", [vehicle_id])
