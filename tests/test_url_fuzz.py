"""Values from the URL are shown as plain text (issue 12 point 4): markup, control characters, very long values
and repeated keys, for every URL key the app reads, under streamlit.testing.v1.AppTest."""

# ruff: noqa: F811  (the fixtures imported from tests.test_app are parameters here)
from __future__ import annotations

import re

import pytest

from app.state import SHOW_MAX, shown
from tests.test_app import _ok, _warnings, app, release_root  # noqa: F401  (fixtures)

EVIL = "x`**BOLD**`[link](http://evil.example)<script>alert(1)</script>\n\n# HEAD\n:red[r] $x$"
CTRL = "a\x00b\x07c\x1bd\u202ee\r\nf"
LONG = "L" * 5000
# an un-escaped piece of the value would render as one of these
_RENDERED = [
    re.compile(r"(?<!\\)\[link(?<!\\)\]\(http"),
    re.compile(r"(?<![\\*])\*\*BOLD"),
    re.compile(r"(?m)^#\s*HEAD"),
    re.compile(r"(?<!\\)<script"),
    re.compile(r"(?<!\\):red\["),
]


def _bodies(at) -> list[str]:
    out = [w.value for w in at.warning]
    out += [m.value for m in at.markdown] + [c.value for c in at.caption]
    return out


def _no_markup(at, value: str) -> None:
    for body in _bodies(at):
        if "BOLD" in body or "HEAD" in body:
            for rx in _RENDERED:
                assert not rx.search(body), (rx.pattern, body)
        assert "evil.example)" not in body.replace("\\)", "").replace("\\.", ".") or "\\(" in body, body
        assert not any(ch in body for ch in "\x00\x07\x1b\u202e\r"), body
        assert len(body) < 1000 or value != LONG, len(body)


@pytest.mark.parametrize("key", ["dataset", "metric", "release", "order", "family"])
def test_markup_in_a_url_value_is_shown_as_text(app, key):
    at = app("heatmap", **{key: EVIL})
    _ok(at)
    _no_markup(at, EVIL)
    w = " ".join(_warnings(at))
    assert shown(EVIL) in w, w
    assert "\\*\\*BOLD\\*\\*" in w and "\\[link\\]\\(http" in w


def test_markup_in_an_unknown_key_is_shown_as_text(app):
    at = app("heatmap", **{EVIL: "1"})
    _ok(at)
    _no_markup(at, EVIL)
    assert shown(EVIL) in " ".join(_warnings(at))


def test_control_characters_are_made_visible(app):
    at = app("heatmap", dataset=CTRL, family=[CTRL])
    _ok(at)
    _no_markup(at, CTRL)
    w = " ".join(_warnings(at))
    assert "\\\\x00" in w and "\\\\x0a" in w and "\\\\u202e" in w, w


def test_a_long_value_is_cut(app):
    at = app("heatmap", dataset=LONG, metric=LONG, family=[LONG])
    _ok(at)
    for w in _warnings(at):
        assert len(w) < 2 * SHOW_MAX + 200, len(w)
    assert "5,000 characters" in " ".join(_warnings(at))


def test_a_repeated_single_value_key_is_warned(app):
    at = app("heatmap", dataset=["qm9", "offeq"], order=["cluster", "family"])
    _ok(at)
    w = " ".join(_warnings(at))
    assert "`dataset` given 2 times" in w and "“qm9”" in w, w
    assert "`order` given 2 times" in w, w
    assert at.selectbox(key="dataset").value == "qm9"
