"""Outliers tiles and filters (issue 17 item 7, issue 18 item 2): the reason in a few words with the whole of it
on demand, and a cluster filter that says what each cluster is."""
import ui

from .test_pages import no_errors, run_page

LONG = "osnet: far from every neighbour, sparser than its neighbours; unusual in 1 of 3 models"


def test_why_is_a_few_words_with_the_whole_reason_on_demand():
    short, whole = ui.why_text(LONG, "osnet: knn, lof")
    assert short == "why: osnet: far from every neighbour…"
    assert whole == "why: " + LONG + " · top 1% by osnet: knn, lof"
    assert ui.why_text("descriptor has NaN/inf in vdc_type") == ("why: descriptor has NaN/inf in vdc_type",
                                                                 "why: descriptor has NaN/inf in vdc_type")
    assert ui.why_text("descriptor has NaN/inf in vdc_type, osnet")[0] == "why: descriptor has NaN/inf in vdc_type…"
    assert ui.why_text("osnet: a rare kind") == ("why: osnet: a rare kind", "why: osnet: a rare kind")
    assert ui.why_text("") == ("nothing unusual stands out", None)
    assert ui.why_text(None, "vdc_type: lof") == ("nothing unusual stands out", "top 1% by vdc_type: lof")


def test_outlier_tiles_show_a_few_words_and_the_rest_on_hover(app_db):
    at = run_page("outliers", model="consensus", page="1", flagged="0")
    no_errors(at)
    whys = [c for c in at.caption if c.value.startswith(("why:", "nothing unusual"))]
    assert len(whys) == 24
    for c in whys:
        assert len(c.value.split()) <= 1 + 5 + 1 and len(c.value) <= 60, c.value  # "why:", 5 words, at most
        if c.value.startswith("why:"):
            assert c.proto.help.startswith(c.value.rstrip("…")), (c.value, c.proto.help)
    assert any(c.value.endswith("…") and len(c.proto.help) > len(c.value) for c in whys)  # details on demand


def test_outliers_cluster_filter_says_size_colour_and_name(app_db):
    from lib.queries import Explorer

    named = run_page("clusters", model="vdc_color", cluster="2")
    named.text_input(key="name-vdc_color-2").input("silver cars").run()
    at = run_page("outliers", model="vdc_color")
    no_errors(at)
    picker = next(s for s in at.selectbox if s.label == "Cluster")
    ex = Explorer(app_db)
    try:
        cl = ex.clusters("vdc_color")
    finally:
        ex.close()
    assert picker.options[0] == "all clusters" and len(picker.options) == 1 + len(cl)
    for option, r in zip(picker.options[1:], cl.itertuples()):
        assert option.startswith(f"{r.cluster}" + (" “silver cars”" if r.cluster == 2 else "")
                                 + f": {r.size:,} images ("), option
        assert ", mostly " in option or ", mixed colours" in option or ", no colour measured" in option, option
    # the label is the Clusters page's own
    assert picker.options[1:] == ui.cluster_labels(cl, {2: {"name": "silver cars"}})
