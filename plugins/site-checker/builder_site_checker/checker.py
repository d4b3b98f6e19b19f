"""The site check itself: pure functions over page texts and a set of file names."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

__all__ = ["Problem", "check_pages", "is_page"]

VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param"}
    | {"source", "track", "wbr"}
)
"""Elements that never have an end tag."""
OPTIONAL_END = frozenset(
    {"html", "head", "body", "p", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody"}
    | {"tfoot", "colgroup", "caption", "option", "optgroup", "rt", "rp"}
)
"""Elements whose end tag HTML lets you leave out."""
REFERENCES = {
    "a": ("href",),
    "link": ("href",),
    "img": ("src",),
    "script": ("src",),
    "source": ("src",),
    "iframe": ("src",),
    "audio": ("src",),
    "video": ("src", "poster"),
    "embed": ("src",),
    "track": ("src",),
}
"""The attributes, per element, that reference another file."""
EXTERNAL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "data", "javascript", "ftp"})


def is_page(name: str) -> bool:
    """Whether a file name is an HTML page."""
    return name.lower().endswith((".html", ".htm"))


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a page."""

    page: str
    line: int
    kind: str
    message: str

    def __str__(self) -> str:
        where = f"{self.page}:{self.line}" if self.line else self.page
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class _Reference:
    target: str
    line: int


@dataclass
class _Page:
    ids: dict[str, int] = field(default_factory=dict)
    references: list[_Reference] = field(default_factory=list)
    problems: list[tuple[int, str, str]] = field(default_factory=list)
    title: str | None = None


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = _Page()
        self._stack: list[tuple[str, int]] = []
        self._in_title = False
        self._title_text: list[str] = []

    def _line(self) -> int:
        return self.getpos()[0]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs)
        if tag not in VOID:
            self._stack.append((tag, self._line()))
        if tag == "title":
            self._in_title = True
            self._title_text = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs)

    def _start(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        line = self._line()
        for name in ("id",) + (("name",) if tag == "a" else ()):
            anchor = values.get(name)
            if anchor:
                if name == "id" and anchor in self.page.ids:
                    self.page.problems.append(
                        (
                            line,
                            "duplicate id",
                            f'id="{anchor}" is also used at line {self.page.ids[anchor]}',
                        )
                    )
                self.page.ids.setdefault(anchor, line)
        for attribute in REFERENCES.get(tag, ()):
            target = values.get(attribute)
            if target:
                self.page.references.append(_Reference(target.strip(), line))
        if tag == "img" and "alt" not in values:
            source = values.get("src") or "an image"
            self.page.problems.append((line, "missing alt text", f"<img> {source} has no alt"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.page.title = "".join(self._title_text).strip()
        if tag in VOID:
            return
        if not any(open_tag == tag for open_tag, _ in self._stack):
            self.page.problems.append(
                (self._line(), "malformed HTML", f"</{tag}> closes nothing that is open")
            )
            return
        while self._stack:
            open_tag, opened = self._stack.pop()
            if open_tag == tag:
                return
            if open_tag not in OPTIONAL_END:
                self.page.problems.append(
                    (
                        opened,
                        "malformed HTML",
                        f"<{open_tag}> is not closed before </{tag}> at line {self._line()}",
                    )
                )

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_text.append(data)

    def finish(self) -> _Page:
        self.close()
        for open_tag, opened in self._stack:
            if open_tag not in OPTIONAL_END:
                self.page.problems.append(
                    (opened, "malformed HTML", f"<{open_tag}> is never closed")
                )
        if not self.page.title:
            self.page.problems.append((0, "missing title", "the page has no <title>"))
        return self.page


def _resolve(page: str, target: str) -> tuple[str | None, str] | None:
    """The site file a reference points to and its fragment; None when external."""
    parts = urlsplit(target)
    if parts.scheme.lower() in EXTERNAL_SCHEMES or parts.netloc or target.startswith("//"):
        return None
    if parts.scheme:
        return None
    path = unquote(parts.path)
    if not path:
        return page, parts.fragment
    base = "" if path.startswith("/") else posixpath.dirname(page)
    joined = posixpath.normpath(posixpath.join(base, path.lstrip("/")))
    if joined == ".." or joined.startswith("../"):
        return "", parts.fragment
    return ("." if joined == "." else joined) + ("/" if path.endswith("/") else ""), parts.fragment


def _existing(target: str, files: set[str]) -> str | None:
    """The file a resolved target is served from, trying directory index pages."""
    plain = target.rstrip("/")
    candidates = [] if target.endswith("/") else [plain]
    prefix = "" if plain in (".", "") else plain + "/"
    candidates += [f"{prefix}index.html", f"{prefix}index.htm"]
    if not target.endswith("/"):
        candidates.append(f"{plain}.html")
    return next((candidate for candidate in candidates if candidate in files), None)


def check_pages(pages: dict[str, str], files: set[str]) -> list[Problem]:
    """Check every page; returns the problems sorted by page and line.

    Args:
        pages: Page path (relative to the site root) → its HTML.
        files: Every file of the site, relative to the site root.
    """
    parsed: dict[str, _Page] = {}
    for name, html in pages.items():
        parser = _PageParser()
        parser.feed(html)
        parsed[name] = parser.finish()
    problems: list[Problem] = []
    for name, page in parsed.items():
        problems += [Problem(name, line, kind, message) for line, kind, message in page.problems]
        for reference in page.references:
            problem = _check_reference(name, reference, files, parsed)
            if problem is not None:
                problems.append(problem)
    return sorted(problems)


def _check_reference(
    page: str, reference: _Reference, files: set[str], parsed: dict[str, _Page]
) -> Problem | None:
    resolved = _resolve(page, reference.target)
    if resolved is None:
        return None
    target, fragment = resolved
    if not target:
        return Problem(
            page, reference.line, "broken link", f"{reference.target} leads outside the site"
        )
    found = target if target == page else _existing(target, files)
    if found is None:
        return Problem(page, reference.line, "broken link", f"{reference.target} does not exist")
    if fragment and found in parsed and fragment not in parsed[found].ids:
        return Problem(
            page,
            reference.line,
            "broken link",
            f"{reference.target}: no element has id {fragment!r}",
        )
    return None
