"""The web UI for people who do not use a mouse or do not see the screen well, in real Chromium: every control
has an accessible name, text meets WCAG AA contrast, and the main path works from the keyboard alone."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from ..harness.browser import halt, sign_in, vms
from ..harness.serverproc import Server

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

PAGES = [
    "#/home/VM",
    "#/home/host",
    "#/new-vm",
    "#/settings/servers",
    "#/settings/users",
    "#/settings/acls",
    "#/settings/updates",
]

# Controls without an accessible name: no label, aria-label, aria-labelledby, title or text.
UNNAMED = """() => {
  const named = (el) => {
    if (el.getAttribute('aria-label')?.trim() || el.getAttribute('title')?.trim()) return true;
    const by = el.getAttribute('aria-labelledby');
    if (by && by.split(/\\s+/).some((id) => document.getElementById(id)?.textContent.trim())) return true;
    if (el.labels && [...el.labels].some((l) => l.textContent.trim())) return true;
    if (['BUTTON', 'A'].includes(el.tagName) && el.textContent.trim()) return true;
    return false;
  };
  const visible = (el) => el.offsetParent !== null || el.getClientRects().length > 0;
  return [...document.querySelectorAll('button, a[href], input:not([type=hidden]), select, textarea, [role=button]')]
    .filter((el) => visible(el) && !named(el)).map((el) => el.outerHTML.slice(0, 120));
}"""

# Text whose contrast with what is behind it is below WCAG AA (4.5:1, or 3:1 for large text).
LOW_CONTRAST = """() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!el || seen.has(el) || !walker.currentNode.textContent.trim()) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || el.getClientRects().length === 0 || el.closest('[hidden], .skip, .visually-hidden, canvas, .u-legend')) continue;
    const fg = lum(rgb(style.color).slice(0, 3)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) out.push(`${ratio.toFixed(2)}: ${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 40)}"`);
  }
  return out;
}"""


def test_every_control_is_named_and_text_is_readable(server: Server, page: Page) -> None:
    page.goto(server.url + "/")
    assert page.evaluate(UNNAMED) == []  # the sign-in form
    assert page.evaluate(LOW_CONTRAST) == []
    sign_in(page, server)
    vm = vms(server)[0]
    for where in [*PAGES, f"#/vm/{vm['id']}"]:
        page.goto(f"{server.url}/{where}")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)  # the view's first draw
        assert page.evaluate(UNNAMED) == [], where
        assert page.evaluate(LOW_CONTRAST) == [], where
    page.click("#action-snapshot")  # a toast
    expect(page.locator(".toast").first).to_be_visible()
    assert page.evaluate(LOW_CONTRAST) == []
    # the checks themselves: a pale text and a nameless button are found
    page.evaluate("""() => document.getElementById('view').append(
      Object.assign(document.createElement('p'), {textContent: 'pale', style: 'color: #bbb'}),
      Object.assign(document.createElement('button'), {className: 'nameless'}))""")
    assert any('"pale"' in found for found in page.evaluate(LOW_CONTRAST))
    assert any("nameless" in found for found in page.evaluate(UNNAMED))


def test_the_keyboard_alone_finds_a_vm_opens_it_and_starts_it(server: Server, page: Page) -> None:
    (halted,) = halt(server, 1)
    sign_in(page, server)
    page.goto(f"{server.url}/#/home/VM")
    page.reload()  # a fresh page, as one arrives at it
    expect(page.locator("#count")).to_be_visible()
    page.keyboard.press("Tab")  # the first stop is the skip link, then the rest in reading order
    expect(page.locator(".skip")).to_be_focused()
    page.keyboard.press("Enter")  # skip to the content
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "search":
            break
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type(f'name_label:"{halted["name_label"]}" power_state:halted')
    expect(page.locator("#count")).to_contain_text("1 of")
    link = page.locator(f"#objects a[href='#/vm/{halted['id']}']")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.getAttribute('href')") == f"#/vm/{halted['id']}":
            break
    expect(link).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#object-title")).to_contain_text(halted["name_label"])
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "action-start":
            break
    expect(page.locator("#action-start")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#power-state")).to_have_text("Running")
    # a dialog takes the focus, Escape closes it and gives nothing
    page.locator("#action-force-stop").focus()
    page.keyboard.press("Enter")
    expect(page.locator("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("dialog")).to_have_count(0)
    expect(page.locator("#power-state")).to_have_text("Running")
