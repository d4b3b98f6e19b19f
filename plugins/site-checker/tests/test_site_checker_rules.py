"""The rules of check_pages, on page texts alone."""

from __future__ import annotations

import pytest
from builder_site_checker import Problem, check_pages

TITLE = "<head><title>t</title></head>"


def problems(html: str, files: set[str] | None = None) -> list[str]:
    return [str(p) for p in check_pages({"p.html": html}, files or {"p.html"})]


def test_clean_page() -> None:
    html = f"""<!doctype html><html>{TITLE}<body>
<ul><li>one<li>two</ul><p>para<p>another<br><img src="p.html" alt="x">
<table><tr><td>a<td>b</table><a href="#top" id="top">top</a>
<a href="//cdn.example.com/x.js">cdn</a><a href="tel:+1">call</a><a href="javascript:void(0)">js</a>
<a href="p.html?x=1">self</a><a href="./">index</a></body></html>"""
    assert problems(html, {"p.html", "index.html"}) == []


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (
            "<div><span></div>",
            "p.html:1: malformed HTML: <span> is not closed before </div> at line 1",
        ),
        ("<section>", "p.html:1: malformed HTML: <section> is never closed"),
        ("</em>", "p.html:1: malformed HTML: </em> closes nothing that is open"),
        ('<a id="x"></a>\n<b id="x"></b>', 'p.html:2: duplicate id: id="x" is also used at line 1'),
        ('<img src="p.html">', "p.html:1: missing alt text: <img> p.html has no alt"),
        ('<a href="../up.html">x</a>', "p.html:1: broken link: ../up.html leads outside the site"),
        ('<a href="#gone">x</a>', "p.html:1: broken link: #gone: no element has id 'gone'"),
        ('<script src="/js/app.js"></script>', "p.html:1: broken link: /js/app.js does not exist"),
        (
            '<video src="v.mp4" poster="poster.jpg"></video>',
            "p.html:1: broken link: poster.jpg does not exist",
        ),
    ],
)
def test_one_problem(html: str, expected: str) -> None:
    files = {"p.html", "v.mp4"}
    assert problems(TITLE + html, files) == [expected]


def test_missing_or_empty_title() -> None:
    assert problems("<p>x") == ["p.html: missing title: the page has no <title>"]
    assert problems("<title> </title>") == ["p.html: missing title: the page has no <title>"]


def test_directory_links_and_pretty_urls() -> None:
    pages = {"index.html": f"<html>{TITLE}<a href='docs/'>d</a><a href='about'>a</a></html>"}
    files = {"index.html", "docs/index.html", "about.html"}
    assert check_pages(pages, files) == []
    assert check_pages(pages, {"index.html"}) == [
        Problem("index.html", 1, "broken link", "about does not exist"),
        Problem("index.html", 1, "broken link", "docs/ does not exist"),
    ]
