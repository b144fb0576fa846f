"""Open the demo's Dagster UI in headless Chromium and check that its main views render.

Run it against ``make run`` (``make ui-check``, or ``python tools/ui_check.py --url URL``). It
drives the Debian ``chromium`` executable through Playwright (the ``ui`` extra; Playwright's own
browser download is not needed) and, for each view, waits until its content is drawn, saves a
screenshot into ``--out`` (default ``.ui-check/``) and collects what went wrong on the page:
error boundary text, GraphQL requests that failed or answered with errors, uncaught page errors
and console errors. It prints one line per check and exits 1 if any failed.

Views: the asset lineage graph, the events table's partitions, its checks and its metadata
plots (rows loaded, rejects, lag per window).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ERROR_TEXTS = (
    "Something went wrong",
    "An unexpected error occurred",
    "Unexpected GraphQL error",
    "PythonError",
    "Error loading",
    "Could not load",
    "Not found",
)
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


@dataclass
class PageProblems:
    """What went wrong on the page while a view loaded."""

    graphql: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def clear(self) -> None:
        """Forget problems of the previous view."""
        self.graphql.clear()
        self.page_errors.clear()
        self.console_errors.clear()

    def all(self) -> list[str]:
        """Every problem, labelled."""
        return (
            [f"GraphQL: {p}" for p in self.graphql]
            + [f"page error: {p}" for p in self.page_errors]
            + [f"console error: {p}" for p in self.console_errors]
        )


@dataclass
class View:
    """One page of the UI and what shows that it rendered."""

    name: str
    path: str
    ready: Callable  # (page) -> None, raises if the content never appears
    what: str


def find_chromium(explicit: str | None) -> str:
    """The Chromium executable: ``--chromium``, ``$CHROMIUM``, or the Debian package's."""
    for candidate in (explicit, os.environ.get("CHROMIUM"), *CHROMIUM_CANDIDATES):
        if candidate and (path := shutil.which(candidate)):
            return path
    sys.exit("Chromium not found: sudo apt-get install -y chromium (or pass --chromium PATH)")


def watch(page, problems: PageProblems) -> None:
    """Collect failed GraphQL requests, GraphQL errors, page errors and console errors."""

    def on_response(response) -> None:
        if "/graphql" not in response.url:
            return
        if response.status >= 400:
            problems.graphql.append(f"HTTP {response.status} {response.url}")
            return
        try:
            body = response.json()
        except Exception:  # a streamed or aborted response: nothing to read
            return
        for error in body.get("errors") or []:
            problems.graphql.append(json.dumps(error)[:300])

    page.on("response", on_response)

    def on_failed(request) -> None:
        # Requests of the previous view are aborted by the navigation: not a failure.
        if "/graphql" in request.url and request.failure != "net::ERR_ABORTED":
            problems.graphql.append(f"failed ({request.failure}) {request.url}")

    page.on("requestfailed", on_failed)
    page.on("pageerror", lambda exc: problems.page_errors.append(str(exc)[:300]))
    page.on("console", lambda m: m.type == "error" and problems.console_errors.append(m.text[:300]))


def error_texts(page) -> list[str]:
    """Error boundary and error state texts visible on the page."""
    body = page.inner_text("body")
    return [text for text in ERROR_TEXTS if text in body]


def views(stream_table: str) -> list[View]:
    """The checked views of the events table ``stream_table``."""

    def visible(page, text: str, exact: bool = True) -> None:
        page.get_by_text(text, exact=exact).filter(visible=True).first.wait_for(timeout=30_000)

    def lineage(page) -> None:
        for name in (stream_table, f"{stream_table}_rejects", "sources"):
            visible(page, name)

    def partitions(page) -> None:
        page.locator("text=/\\d{4}-\\d{2}-\\d{2}-\\d{2}:\\d{2}/").filter(visible=True).first.wait_for(
            timeout=30_000
        )

    def checks(page) -> None:
        for name in ("no_duplicate_event_ids", "completeness"):
            visible(page, name)

    def plots(page) -> None:
        page.get_by_role("button", name="Plots").first.click(timeout=30_000)
        plot = page.locator("canvas").first
        plot.wait_for(timeout=30_000)
        plot.scroll_into_view_if_needed()  # the screenshot shows the plots, not the page's top

    asset = f"/assets/{stream_table}"
    return [
        View("lineage", f"{asset}?view=lineage", lineage, f"lineage: source -> {stream_table} -> rejects"),
        View("partitions", f"{asset}?view=partitions", partitions, "partition keys of the windows"),
        View("checks", f"{asset}?view=checks", checks, "the table's asset checks"),
        View("plots", asset, plots, "metadata plots per partition (Overview, Plots)"),
    ]


def dismiss_welcome(page) -> None:
    """Close the first-visit "Join the Dagster community" dialog if it shows."""
    with contextlib.suppress(Exception):  # not shown: it was dismissed before on this instance
        page.get_by_role("button", name="Skip").click(timeout=5_000)


def check(url: str, out: Path, chromium: str, stream_table: str, settle: float) -> int:
    """Open every view, screenshot it, print what was checked; 0 if all rendered cleanly."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    problems = PageProblems()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        watch(page, problems)
        page.goto(url, wait_until="domcontentloaded", timeout=60_000)
        dismiss_welcome(page)
        for view in views(stream_table):
            problems.clear()
            shot = out / f"{view.name}.png"
            error: str | None = None
            started = time.monotonic()
            try:
                page.goto(url.rstrip("/") + view.path, wait_until="domcontentloaded", timeout=60_000)
                view.ready(page)
                page.wait_for_load_state("networkidle", timeout=30_000)
                time.sleep(settle)  # let the last renders and requests land
            except Exception as exc:
                error = f"did not render: {str(exc).splitlines()[0]}"
            page.screenshot(path=str(shot), full_page=False)
            found = [error] if error else []
            found += [f"error text: {t}" for t in error_texts(page)] + problems.all()
            status = "ok  " if not found else "FAIL"
            failures += bool(found)
            print(f"{status} {view.name:<10} {view.what} ({time.monotonic() - started:.1f}s) -> {shot}")
            for problem in found:
                print(f"       {problem}")
        browser.close()
    print(f"{len(views(stream_table)) - failures} of {len(views(stream_table))} views rendered cleanly")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the checks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CWL_UI_URL", "http://127.0.0.1:3000"))
    parser.add_argument("--out", type=Path, default=Path(".ui-check"), help="screenshot folder")
    parser.add_argument("--chromium", help="Chromium executable (default: chromium on PATH)")
    parser.add_argument("--table", default="app_events", help="the events table (asset) to check")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to wait after a view rendered")
    args = parser.parse_args(argv)
    return check(args.url, args.out, find_chromium(args.chromium), args.table, args.settle)


if __name__ == "__main__":
    sys.exit(main())
