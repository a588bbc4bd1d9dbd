"""Small defects seen at full scale (issue 17), each with the check that would have caught it."""
import json

import pyarrow as pa

import ui

from .test_pages import no_errors, run_page


def test_margins_read_as_numbers_not_minus_zero():
    assert ui.margin_text(-1e-15) == "0" and ui.margin_text(0.0) == "0"
    assert ui.margin_text(0.000412) == "0.000412"  # a cosine-scale margin, not "0.00"
    assert ui.margin_text(0.5) == "0.5" and ui.margin_text(12.3456) == "12.3"


def test_boundary_captions_on_a_cosine_model(app_db):
    at = run_page("clusters", model="osnet")
    no_errors(at)
    captions = [i.captions[0] for i in at.image if "margin" in i.captions[0]]
    assert captions
    for c in captions:
        value = c.split("margin ")[1]
        assert value != "0.00" and not value.startswith("-0"), c
        assert float(value) >= 0


def test_metrics_draws_no_empty_panel(app_db):
    at = run_page("metrics", model="vdc_type")
    no_errors(at)
    charts = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    grids = [c for c in charts if "facet" in c]
    assert grids, "the scores' grid"
    for spec, chart in ((c, el) for c, el in zip(charts, at.get("vega_lite_chart")) if "facet" in c):
        frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets]
        panels = {s for f in frames if "score" in f for s in f["score"]}
        assert len(panels) % spec["columns"] == 0, (panels, spec["columns"])  # every row of the grid full
    assert any("Gap statistic" in json.dumps(c.get("title", "")) for c in charts)  # the gap on its own


def test_overview_table_keeps_to_the_columns_that_fit(app_db):
    at = run_page("overview")
    no_errors(at)
    table = at.dataframe[0].value
    assert list(table.columns) == ["rank_groups", "model", "structure", "dims", "explained_variance", "chosen_k",
                                   "silhouette", "davies_bouldin", "map_knn_preservation"]
    assert table["dims"].str.contains(" → ").all()
