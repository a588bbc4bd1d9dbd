"""Passes over a memory-mapped descriptor file keep about one block of it resident."""
import pickle

import numpy as np
import pytest

from lib import descriptors, mapped, metric, reduce


def _rss_file_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssFile:")) / 1024


@pytest.fixture(params=["npy", "pickle"])
def mapped_file(tmp_path, request):
    """A descriptor file of 78 MiB in either format the loader reads (a pickle's array is mapped too)."""
    X = np.random.default_rng(0).random((40_000, 512), dtype=np.float32)
    path = tmp_path / f"m.{request.param}"
    if request.param == "npy":
        np.save(path, X)
    else:
        path.write_bytes(pickle.dumps(X, protocol=4))
    return path, X


def test_a_pass_in_row_blocks_keeps_about_one_block_of_the_file(mapped_file):
    path, _ = mapped_file
    X = descriptors.load_array(path)
    before = _rss_file_mb()
    total = sum(block.sum(axis=0, dtype=np.float64) for _, block in mapped.row_blocks(X, 2048))
    kept = _rss_file_mb() - before
    assert kept < 16, f"{kept:.0f} MiB of the file stayed resident"
    plain = np.sum(X, axis=0, dtype=np.float64)  # the same pass without releasing: the whole file stays
    assert _rss_file_mb() - before > 60
    np.testing.assert_array_equal(total, plain)


def test_the_loaders_passes_over_a_mapped_file_give_what_an_array_in_memory_gives(mapped_file):
    path, X_mem = mapped_file
    before = _rss_file_mb()
    X, nonfinite = descriptors.validate(descriptors.load_array(path), path)
    assert mapped._read_only_map(X) is not None and not nonfinite.any()  # no copy of a clean float32 file
    pca = reduce.fit_pca(X, chunk_rows=4096)
    Z = reduce.transform(pca, X, chunk_rows=4096)
    unit = metric.normalise_rows(X)  # a copy: the map is read-only
    assert _rss_file_mb() - before < 16
    pca_mem = reduce.fit_pca(X_mem, chunk_rows=4096)
    np.testing.assert_allclose(pca.components, pca_mem.components, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Z, reduce.transform(pca_mem, X_mem, chunk_rows=4096), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(unit, X_mem / np.linalg.norm(X_mem, axis=1, keepdims=True), rtol=1e-5)


def test_a_mapped_file_with_broken_rows_is_filled_in_a_copy(tmp_path):
    X = np.random.default_rng(1).random((3000, 16), dtype=np.float32)
    X[123, 7] = np.nan
    np.save(tmp_path / "b.npy", X)
    got, nonfinite = descriptors.validate(descriptors.load_array(tmp_path / "b.npy"), tmp_path / "b.npy")
    assert nonfinite.nonzero()[0].tolist() == [123] and got.flags.writeable
    assert got[123, 7] == pytest.approx(np.nanmean(X[:, 7]), rel=1e-6)
    assert np.isnan(np.load(tmp_path / "b.npy")[123, 7])  # the user's file is untouched


def test_a_writable_map_is_never_released(tmp_path):
    """Dropping the pages of a copy-on-write map would lose what was written to it."""
    np.save(tmp_path / "w.npy", np.zeros((5000, 64), dtype=np.float32))
    X = np.load(tmp_path / "w.npy", mmap_mode="c")
    X[:] = 1.0
    assert all(np.all(block == 1.0) for _, block in mapped.row_blocks(X, 100))
    assert np.all(X == 1.0)
