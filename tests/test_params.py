"""Property-based tests of everything read from a URL or a text box."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.queries import Explorer, int_param, parse_int

# what people and attackers type: digits in every script, signs, blanks, SQL, huge numbers
ANY_TEXT = st.one_of(st.text(max_size=60), st.from_regex(r"\s*[+-]?[0-9]{0,25}\s*", fullmatch=True),
                     st.sampled_from(["\u00b2", "\u0663", "1_000", "0x10", "1e3", "1.0", "--1", "' OR 1=1 --"]))


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT)
def test_parse_int_takes_only_plain_ascii_digits(text):
    n = parse_int(text)
    stripped = text.strip()
    digits = stripped[1:] if stripped.startswith("+") else stripped
    plain = digits.isascii() and digits.isdigit() and len(digits) <= 18
    assert (n is not None) == plain
    if plain:
        assert n == int(digits)


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT, st.integers(0, 50), st.integers(0, 50))
def test_int_param_is_in_range_or_the_default(text, lo, span):
    hi = lo + span
    got = int_param(text, lo, hi, default="fallback")
    assert got == "fallback" or (isinstance(got, int) and lo <= got <= hi)


@pytest.fixture(scope="module")
def ex(demo_db):
    e = Explorer(demo_db[0])
    yield e
    e.close()


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_image_ids_from_the_url_are_valid_ids_or_a_short_friendly_message(ex, text):
    try:
        image_id = ex.check_image_id(text)
    except ValueError as e:
        msg = str(e)
        assert len(msg) < 300 and ("whole number" in msg or "no image" in msg)  # 24 chars, escaped
        assert "Traceback" not in msg
        return
    assert 0 <= image_id < ex.n_images and ex.image(image_id) is not None


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=40), st.sampled_from(["osnet", "OSNET", "osnet ", "consensus", "vdc_color'--"])))
def test_model_names_are_known_ones_or_refused(ex, text):
    try:
        got = ex.check_model(text)
    except ValueError as e:
        assert "unknown model" in str(e) and text not in ex.model_names()
        return
    assert got == text and got in ex.model_names()


@settings(max_examples=100, deadline=None)
@given(st.integers(-10**6, 10**9))
def test_any_outlier_page_number_gives_a_page_or_nothing(ex, page):
    df, total = ex.outliers("osnet", page, 24)
    assert total == ex.n_images and len(df) <= 24
    assert df["rank"].is_monotonic_increasing
