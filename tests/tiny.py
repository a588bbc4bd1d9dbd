"""A tiny dataset in the real layout for tests of mechanics (not of planted structure)."""
import pickle

import numpy as np
from PIL import Image

from lib import pipeline

# mechanics only: KMeans alone (the other algorithms have their own tests)
TINY_CONFIG = pipeline.LoadConfig(ks=tuple(range(2, 6)), map_iters=50, map_exaggeration_iters=50, algorithms=("kmeans",))


def make_tiny(root, n=300, seed=0):
    rng = np.random.default_rng(seed)
    (root / "descriptors").mkdir(parents=True)
    centers = rng.normal(size=(4, 8)) * 6
    lab = rng.integers(0, 4, n)
    for name, d in (("alpha", 16), ("beta", 24)):
        X = centers[lab] @ rng.normal(size=(8, d)) / 3 + rng.normal(size=(n, d))
        (root / "descriptors" / f"{name}.pickle").write_bytes(pickle.dumps(X.astype(np.float32), protocol=4))
    lines = ["paths"]
    for i in range(n):
        rel = f"{i % 10 + 1}/{i // 5:05d}/{i // 5:06d}_c{i % 7:03d}_{i:05d}.jpg"
        lines.append(f"/kaggle/input/tiny/raw_data/{rel}")
        p = root / "raw_data" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), tuple(int(v) for v in rng.integers(0, 255, 3))).save(p)
    (root / "images_paths.csv").write_text("\n".join(lines) + "\n")
    return root


def load_tiny(root, db_name="vehicles.duckdb"):
    """:func:`make_tiny` under ``root/data`` loaded into ``root/db_name``; returns (data, db)."""
    data = make_tiny(root / "data")
    db = root / db_name
    pipeline.load(data, db, TINY_CONFIG)
    return data, db
