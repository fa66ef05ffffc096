#!/usr/bin/env python3
"""Opens the HTML report of every scenario in a real headless Chromium and checks what a
reader gets, as a browser renders it:

- the page carries its Content-Security-Policy and loads with no request leaving it;
- a screenshot is not blank: at least 5 % of its pixels differ from the background;
- every NACL or security group a finding blames is in the text of a hop drawn as dropping;
- nothing overflows a 1,280 px wide window, and no text is smaller than 12 px.

Usage: check-html.py ELBMEDIC_BINARY [--screenshots DIR SCENARIO...]
The browser is the system's Chromium (Debian's package), driven by playwright with no browser
download. Prints one line per scenario and a summary; exits 1 on any failure.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from io import BytesIO

WIDTH = 1280
HEIGHT = 900
MIN_FONT_PX = 12.0
MIN_INK = 0.05
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def browser_path():
    # Debian's launcher script only adds flags; the binary itself is what playwright drives.
    if os.access("/usr/lib/chromium/chromium", os.X_OK):
        return "/usr/lib/chromium/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run(binary, *args):
    out = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    if out.returncode not in (0, 3):
        raise RuntimeError(f"{binary} {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out.stdout


def blamed(report):
    """What the findings blame, each to be found on a hop drawn as failing: a NACL or security
    group on a dropping hop; one of the unhealthy targets on a dropping or degraded one."""
    ids = set()
    unhealthy = []
    for finding in report.get("findings", []):
        for evidence in finding.get("evidence", []):
            kind = evidence.get("kind")
            if finding["code"] in ("nacl-blocks-ephemeral-ports", "nacl-blocks-target-port") and kind == "nacl-rule":
                ids.add(((evidence["nacl_id"],), "drop"))
            elif finding["code"] == "sg-blocks-target-port" and kind == "security-group":
                ids.add((tuple(evidence["group_ids"]), "drop"))
            elif finding["code"] == "targets-unhealthy" and kind == "target-health" \
                    and (evidence.get("state") or "").lower() in ("unhealthy", "outofservice"):
                unhealthy.append(evidence["target"])
    if unhealthy:
        ids.add((tuple(unhealthy), "failing"))
    return ids


def ink(png):
    from PIL import Image

    image = Image.open(BytesIO(png)).convert("RGB")
    background = image.getpixel((2, 2))
    pixels = image.getdata()
    differing = sum(1 for p in pixels if p != background)
    return differing / len(pixels)


FONT_SIZES = """() => {
  const small = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim() !== '');
    if (!own) continue;
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (size < %s) small.push(el.tagName + ' ' + size + 'px: ' + el.textContent.trim().slice(0, 40));
  }
  return small;
}""" % MIN_FONT_PX


def check(page, path, report):
    problems = []
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto("file://" + path)
    page.wait_for_load_state("load")
    others = [u for u in requests if u != "file://" + path]
    if others:
        problems.append(f"{len(others)} requests left the page: {others[:3]}")
    policies = page.eval_on_selector_all(
        'meta[http-equiv="Content-Security-Policy"]', "els => els.map(e => e.content)")
    if policies != [CSP]:
        problems.append(f"Content-Security-Policy is {policies!r}")
    share = ink(page.screenshot(full_page=True))
    if share < MIN_INK:
        problems.append(f"blank: only {share:.1%} of the pixels differ from the background")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    if width > WIDTH:
        problems.append(f"the page is {width} px wide in a {WIDTH} px window")
    small = page.evaluate(FONT_SIZES)
    if small:
        problems.append(f"{len(small)} texts under {MIN_FONT_PX:g} px, e.g. {small[:2]}")
    dropping = page.eval_on_selector_all("g.hop.drop", "els => els.map(e => e.textContent)")
    failing = dropping + page.eval_on_selector_all("g.hop.degraded", "els => els.map(e => e.textContent)")
    for ids, where in blamed(report):
        texts = dropping if where == "drop" else failing
        if not any(any(i in text for i in ids) for text in texts):
            problems.append(f"{' or '.join(ids)} is on no {'dropping' if where == 'drop' else 'failing'} hop ({len(texts)} drawn)")
    return problems, share


def self_test(browser, scratch):
    """The checks must be able to fail: a page breaking each rule is caught by it."""
    policy = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
    text = "<h1 style='font-size:40px'>" + "elbmedic " * 8 + "</h1>"
    blamed_report = {"findings": [{"code": "nacl-blocks-target-port", "evidence": [
        {"kind": "nacl-rule", "nacl_id": "acl-0123456789abcdef0"}]}]}
    pages = [
        ("a request", policy, text + "<img src='http://127.0.0.1:9/x.png'>", {}, "requests left"),
        ("no policy", "", text, {}, "Content-Security-Policy"),
        ("nothing drawn", policy, "", {}, "blank"),
        ("an overflow", policy, text + "<div style='width:2000px'>wide</div>", {}, "wide in a"),
        ("small text", policy, text + "<p style='font-size:9px'>tiny</p>", {}, "texts under"),
        ("the blamed NACL on a passing hop", policy,
         text + "<svg><g class='hop pass'><text>acl-0123456789abcdef0</text></g></svg>",
         blamed_report, "on no dropping hop"),
        ("the unhealthy target on a passing hop", policy,
         text + "<svg><g class='hop pass'><text>10.0.1.7</text></g></svg>",
         {"findings": [{"code": "targets-unhealthy", "evidence": [
             {"kind": "target-health", "target": "10.0.1.7", "state": "unhealthy"}]}]},
         "on no failing hop"),
    ]
    failures = 0
    for name, head, body, report, expected in pages:
        path = os.path.join(scratch, "self-test.html")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>")
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        problems, _ = check(page, path, report)
        page.close()
        if not any(expected in p for p in problems):
            print(f"FAIL self-test: a page with {name} passed the checks ({problems})")
            failures += 1
    print(f"self-test: {len(pages) - failures} of {len(pages)} broken pages caught")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--screenshots", nargs="+", metavar=("DIR", "SCENARIO"))
    args = parser.parse_args()
    strict = os.environ.get("CI") == "true"
    chromium = browser_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        message = "no Chromium or playwright on this machine: the HTML reports were not opened in a browser"
        if strict:
            print(f"FAIL: {message} (CI=true)", file=sys.stderr)
            return 1
        print(f"SKIPPED: {message}; install Debian's chromium and scripts/requirements-browser.txt to run it")
        return 0
    names = [line.split()[0] for line in run(args.binary, "demo", "--list").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        failures = self_test(browser, scratch)
        for name in names:
            html = run(args.binary, "demo", "--scenario", name, "--format", "html")
            report = json.loads(run(args.binary, "demo", "--scenario", name, "--format", "json"))
            path = os.path.join(scratch, f"{name}.html")
            with open(path, "w", encoding="utf-8") as f:
                f.write(html)
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            problems, share = check(page, path, report)
            if args.screenshots and name in args.screenshots[1:]:
                out = os.path.join(args.screenshots[0], f"report-{name}.png")
                page.screenshot(path=out, full_page=False)
            page.close()
            status = "ok" if not problems else "FAIL"
            print(f"{status:4} {name:32} {len(html):>7} bytes, {share:5.1%} ink" + "".join(f"\n     - {p}" for p in problems))
            failures += bool(problems)
        browser.close()
    print(f"{len(names) - failures} of {len(names)} HTML reports pass in Chromium ({chromium})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
