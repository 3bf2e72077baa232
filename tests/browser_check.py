"""Check the chat page of `mygpt serve` (mygpt/static/chat.html) in a real headless Chromium.

Not a pytest test (it needs a browser and takes a minute); run it by hand:

    uv run --with playwright python tests/browser_check.py [--ckpt PATH] [--out DIR]

Chromium comes from the system (`apt-get install -y chromium`), never from Playwright's
download. Without --ckpt a tiny model is trained first (some 25 seconds on 2 CPU cores). Two
servers run: one open, one with --api-key. Each check prints "ok: ..."; the first failure
prints "FAIL: ..." and exits 1. The servers are stopped in every case, Ctrl-C included.
Screenshots of the desktop and phone layouts go to --out (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Optional

try:
    from playwright.sync_api import Error as PlaywrightError, TimeoutError as PlaywrightTimeout, sync_playwright
except ImportError:
    sys.exit("playwright is missing: run this as `uv run --with playwright python tests/browser_check.py`")

REPO = Path(__file__).resolve().parent.parent
KEY = "secret123"
REPLY_TIMEOUT_MS = 60_000  # a reply of the tiny model takes a second or two; a busy machine more
# `uv run --with playwright` points VIRTUAL_ENV at its own environment; the `uv run mygpt`
# started from here use the project's, and would warn about the mismatch.
ENV = {name: value for name, value in os.environ.items() if name != "VIRTUAL_ENV"}


class Failure(Exception):
    pass


def check(condition: Any, message: str) -> None:
    if not condition:
        raise Failure(message)


def ok(message: str) -> None:
    print(f"ok: {message}", flush=True)


# ---- a model to serve ---------------------------------------------------------------------

# The messages the page sends: a char model refuses characters its corpus lacks, so the
# training text below holds all of these (and those of the chat template, "User:", "Assistant:").
MESSAGES = ["hello there", "tell me more", "what is your name?", "good morning"]


def corpus_text(size: int = 20_000) -> str:
    """~size characters of plain dialogue: varied enough for a model to learn a little in 40 steps."""
    rng = random.Random(0)
    lines = [
        "the quick brown fox jumps over the lazy dog.",
        "what is your name? my name is mygpt, a very small model.",
        "good morning! how are you today? i am well, thank you.",
        "tell me more about the river and the old stone bridge.",
        "hello there, friend. it is a fine day for a long walk.",
        "we went to the market and bought bread, cheese and apples.",
        "She said: Yes, I will come; but not before noon.",
        "Why do the stars shine at night? Because the sun is far away.",
    ]
    parts: list[str] = []
    while sum(map(len, parts)) < size:
        parts.append(f"User: {rng.choice(lines)}\nAssistant: {rng.choice(lines)} {rng.choice(lines)}\n")
    return "".join(parts)


def train_checkpoint(workdir: Path) -> Path:
    text = workdir / "corpus.txt"
    text.write_text(corpus_text(), encoding="utf-8")
    data, out = workdir / "data", workdir / "ck"
    run_mygpt(["prepare", "--text", str(text), "--out", str(data)], "prepare the corpus")
    stdout = run_mygpt(
        ["train", "--data", str(data), "--preset", "tiny", "--max-iters", "40", "--device", "cpu", "--out", str(out)],
        "train the tiny model",
    )
    lines = stdout.strip().splitlines()
    check(lines, "`mygpt train` printed no checkpoint path")
    path = Path(lines[-1].strip())
    check(path.is_file(), f"`mygpt train` printed {lines[-1]!r}, which is not a file")
    return path


def run_mygpt(args: list[str], what: str) -> str:
    command = ["uv", "run", "mygpt", *args]
    done = subprocess.run(command, check=False, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise Failure(f"could not {what} (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


# ---- servers ------------------------------------------------------------------------------


class Server:
    """`mygpt serve` in its own process group, so that stopping it stops uv's child python too."""

    def __init__(self, ckpt: Path, *extra: str):
        self.name = "server" + (" (with --api-key)" if extra else "")
        self.proc = subprocess.Popen(
            ["uv", "run", "mygpt", "serve", str(ckpt), "--port", "0", "--device", "cpu", *extra],
            cwd=REPO, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.url: Optional[str] = None
        self.started = threading.Event()
        # Read stderr on a thread: it gives the address, and a full pipe would block the server.
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            found = re.search(r"serving .* at (http://\S+)", line)
            if found and self.url is None:
                self.url = found.group(1)
                self.started.set()
        self.started.set()  # the process ended: wait() below reports it

    def wait_ready(self, timeout: float = 120) -> str:
        self.started.wait(timeout)
        if self.url is None:
            raise Failure(f"{self.name} did not start:\n{self.log()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = get(self.url + "/health")
                if status == 200:
                    return self.url
            except OSError:
                pass
            time.sleep(0.2)
        raise Failure(f"{self.name} at {self.url} did not answer /health in {timeout:.0f}s:\n{self.log()}")

    def log(self) -> str:
        return "\n".join("    " + line for line in self.lines[-30:]) or "    (nothing on stderr)"

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def reap(self) -> None:
        """Wait for the server to end after SIGTERM; kill it if it takes too long or the wait is interrupted."""
        try:
            self.proc.wait(10)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            self.signal(signal.SIGKILL)
            self.proc.wait(5)


def stop(servers: list[Server]) -> None:
    # Every server is signalled before any is waited for: a second Ctrl-C (uv forwards the
    # terminal's to this script as well) during a wait then leaves none running.
    for server in servers:
        if server.proc.poll() is None:
            server.signal(signal.SIGTERM)
    for server in servers:
        server.reap()


def get(url: str, key: Optional[str] = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


# ---- the page -----------------------------------------------------------------------------

# Records, in the page, each length the last reply's text had while it was streaming. The
# observer runs after every task that changed the page, so two lengths mean the reader saw
# the reply at two moments, not that one network read was split by the test.
WATCH_REPLIES = """() => {
  window.__lengths = [];
  new MutationObserver(() => {
    const replies = document.querySelectorAll(".assistant");
    const last = replies[replies.length - 1];
    if (!last) return;
    const stats = last.querySelector(".stats");
    if (stats && stats.textContent) return;  // finished
    const n = last.textContent.length;
    const seen = window.__lengths;
    if (n > 0 && seen[seen.length - 1] !== n) seen.push(n);
  }).observe(document.getElementById("messages"), { subtree: true, childList: true, characterData: true });
}"""


class Page:
    """A browser page on the chat, with the requests it sends to /v1/chat/completions."""

    def __init__(self, browser: Any, url: str, **context: Any):
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.sent: list[Any] = []  # playwright Request objects of chat completions
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.sent.append(r) if r.url.endswith("/v1/chat/completions") else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(url + "/")

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.post_data) for r in self.sent]

    def model_shown(self, model_id: str) -> None:
        try:
            self.page.wait_for_function(
                "id => document.getElementById('model').textContent.trim() === id", arg=model_id, timeout=20_000
            )
        except PlaywrightTimeout:
            raise Failure(f"#model should show {model_id!r}, shows {self.page.text_content('#model')!r}") from None

    def ask(self, text: str, press_enter: bool = False) -> dict[str, str]:
        """Send a message; wait for the reply to finish. Returns its text and stats line."""
        before = self.page.locator(".assistant").count()
        self.page.fill("#message", text)
        if press_enter:
            self.page.press("#message", "Enter")
        else:
            self.page.click("#send")
        try:
            self.page.wait_for_function(
                """n => { const r = document.querySelectorAll('.assistant');
                          return (r.length > n && r[r.length - 1].querySelector('.stats').textContent !== '')
                                 || document.getElementById('error').textContent !== ''; }""",
                arg=before, timeout=REPLY_TIMEOUT_MS,
            )  # fmt: skip
        except PlaywrightTimeout:
            raise Failure(f"no finished reply to {text!r} within {REPLY_TIMEOUT_MS // 1000}s") from None
        check(not self.errors, f"JavaScript errors on the page: {self.errors}")
        error = self.page.text_content("#error")
        check(not error, f"the page shows an error after asking {text!r}: {error!r}")
        reply = self.page.locator(".assistant").last
        result = {
            "text": reply.locator(".content").text_content() or "",
            "stats": reply.locator(".stats").text_content() or "",
        }
        check(result["text"].strip(), f"the reply to {text!r} has no text (stats: {result['stats']!r})")
        check(re.search(r"\d+ tokens? · [\d.]+ tokens/s", result["stats"]),
              f"the stats line should read 'N tokens · X tokens/s', reads {result['stats']!r}")  # fmt: skip
        return result

    def inside_viewport(self, selector: str) -> None:
        box = self.page.locator(selector).bounding_box()
        size = self.page.viewport_size
        check(box is not None, f"{selector} is not visible")
        assert box is not None and size is not None
        right, bottom = box["x"] + box["width"], box["y"] + box["height"]
        fits = box["x"] >= 0 and box["y"] >= 0 and right <= size["width"] and bottom <= size["height"]
        check(fits, f"{selector} at {box} is not within the {size['width']}x{size['height']} viewport")

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path))

    def close(self) -> None:
        self.context.close()


def desktop(browser: Any, url: str, model_id: str, out: Path) -> None:
    view = Page(browser, url, viewport={"width": 1200, "height": 800})
    page = view.page
    view.model_shown(model_id)
    ok(f"desktop: the header shows the model {model_id}")

    page.fill("#max-tokens", "80")
    page.evaluate(WATCH_REPLIES)
    first = view.ask(MESSAGES[0])
    ok(f"desktop: a reply streamed in: {first['text'][:40]!r}... ({first['stats']})")

    lengths = page.evaluate("window.__lengths")
    check(len(lengths) >= 2, f"the reply should grow in steps while streaming; its lengths seen were {lengths}")
    ok(f"desktop: the reply grew in {len(lengths)} steps before it finished (lengths {lengths[:3]}...{lengths[-1]})")

    body = view.bodies()[0]
    expected = {"messages": [{"role": "user", "content": MESSAGES[0]}], "stream": True,
                "stream_options": {"include_usage": True},
                "temperature": 0.8, "top_p": 1, "max_tokens": 80}  # fmt: skip
    check(body == expected, f"the first request should be {expected}, was {body}")
    ok("desktop: the request carries the message, stream options and the settings (defaults, max tokens 80)")

    # Shift+Enter is a new line, not a send.
    page.fill("#message", "")
    page.type("#message", "one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("two")
    typed = page.input_value("#message")
    check(typed == "one\ntwo", f"Shift+Enter should add a newline: {typed!r}")
    check(len(view.sent) == 1, "Shift+Enter sent the message")
    ok("desktop: Shift+Enter adds a newline without sending")

    second = view.ask(MESSAGES[1], press_enter=True)
    bodies = view.bodies()
    check(len(bodies) == 2, f"expected 2 chat requests, saw {len(bodies)}")
    history = bodies[1]["messages"]
    roles = [m["role"] for m in history]
    check(roles == ["user", "assistant", "user"], f"the second request should send the history, its roles are {roles}")
    check(history[0]["content"] == MESSAGES[0] and history[2]["content"] == MESSAGES[1],
          f"the second request's user messages are wrong: {history}")  # fmt: skip
    check(history[1]["content"].strip() == first["text"].strip(),
          f"the history's assistant message {history[1]['content']!r} "
          f"is not the reply shown {first['text']!r}")  # fmt: skip
    ok(f"desktop: Enter sent a second message with the history ({second['stats']})")

    check(page.locator(".msg.user").count() == 2 and page.locator(".assistant").count() == 2,
          "the page should show two user messages and two replies")  # fmt: skip
    view.screenshot(out / "chat_page.png")
    ok(f"desktop: screenshot {out / 'chat_page.png'}")

    page.click("#new-chat")
    count = page.locator("#messages .msg").count()
    check(count == 0, f"New chat should clear the conversation; {count} messages remain")
    view.ask(MESSAGES[2])
    last = view.bodies()[-1]["messages"]
    check(last == [{"role": "user", "content": MESSAGES[2]}],
          f"after New chat the request should hold one message, holds {last}")  # fmt: skip
    ok("desktop: New chat clears the page and the history sent")

    errors_and_stop(view)
    view.close()


def errors_and_stop(view: Page) -> None:
    page = view.page
    # An error answer (a character the char model never saw): shown, and the turn taken back into the input.
    shown = page.locator("#messages .msg").count()
    refused = "a snowman \u2603"
    page.fill("#message", refused)
    page.click("#send")
    page.wait_for_function("() => document.getElementById('error').textContent !== ''")
    error = page.text_content("#error") or ""
    check("vocabulary" in error, f"#error should show the server's message about the vocabulary, shows {error!r}")
    check(page.locator("#messages .msg").count() == shown, "a refused message should be taken off the page")
    check(page.input_value("#message") == refused, "a refused message should be put back in the input")
    ok(f"desktop: a server error is shown ({error!r}) and the message is put back")
    page.fill("#message", "")

    # Stop: what came of the reply stays, marked, and is part of the history sent next.
    page.fill("#max-tokens", "4000")
    before = page.locator(".assistant").count()
    page.fill("#message", MESSAGES[3])
    page.click("#send")
    page.wait_for_function(
        """n => { const r = document.querySelectorAll('.assistant');
                  return r.length > n && r[r.length - 1].querySelector('.content').textContent.length > 10; }""",
        arg=before,
    )
    stats = page.locator(".assistant").last.locator(".stats")
    if stats.text_content():  # the model said its stop string ("\nUser:") before we could press Stop
        ok(f"desktop: Stop not checked: the reply ended by itself first ({stats.text_content()})")
        return
    page.click("#stop")
    page.wait_for_function("() => [...document.querySelectorAll('.assistant .stats')].pop().textContent !== ''")
    check("stopped" in (stats.text_content() or ""), f"a stopped reply's stats should say so: {stats.text_content()!r}")
    check(page.is_visible("#send") and not page.is_visible("#stop"), "after Stop, Send should be back")
    partial = page.locator(".assistant").last.locator(".content").text_content() or ""
    page.fill("#max-tokens", "20")
    view.ask(MESSAGES[1])
    sent = view.bodies()[-1]["messages"]
    check(len(sent) == 5 and sent[3]["role"] == "assistant" and sent[3]["content"].strip() == partial.strip(),
          f"the stopped reply should be in the history sent next: {sent}")  # fmt: skip
    ok(f"desktop: Stop ends a reply part way ({len(partial)} characters kept in the history)")


# Replaces the page's fetch of /v1/chat/completions by one that answers each given stream
# a byte at a time, so every event, line, JSON object and UTF-8 character arrives split.
FAKE_STREAMS = """streams => {
  const realFetch = window.fetch;
  window.fetch = async (url, options) => {
    if (!String(url).endsWith("/v1/chat/completions")) return realFetch(url, options);
    const bytes = new TextEncoder().encode(streams.shift());
    let i = 0;
    const body = new ReadableStream({
      async pull(controller) {
        if (i % 16 === 0) await new Promise((resolve) => setTimeout(resolve, 1));  // time passes
        if (i >= bytes.length) return controller.close();
        controller.enqueue(bytes.slice(i, i + 1));
        i += 1;
      },
    });
    return new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } });
  };
}"""


def sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def chunk(delta: dict[str, str], reason: Optional[str] = None) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}


def split_stream(browser: Any, url: str) -> None:
    """The stream parser on awkward input: split bytes, CRLF lines, comments, multi-line data, errors."""
    view = Page(browser, url, viewport={"width": 1000, "height": 700})
    page = view.page
    two_lines = sse(chunk({"content": "wörld\nline two"})).replace('"choices"', '\ndata: "choices"')
    good = (
        ": a comment, as proxies send to keep a connection open\n\n"
        + sse(chunk({"role": "assistant", "content": ""}))
        + sse(chunk({"content": " hé"})).replace("\n", "\r\n")
        + sse(chunk({"content": "llo ☃ "}))
        + two_lines
        + sse(chunk({}, "length"))
        + sse({"object": "chat.completion.chunk", "choices": [],
               "usage": {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}})
        + "data: [DONE]\n\n"
    )  # fmt: skip
    failing = sse(chunk({"role": "assistant", "content": ""})) + sse(chunk({"content": "partial"}))
    failing += sse({"error": {"message": "boom: the engine failed", "type": "server_error"}})
    page.evaluate(FAKE_STREAMS, [good, failing])

    reply = view.ask("split")
    expected = "héllo ☃ wörld\nline two"
    check(reply["text"] == expected, f"the split stream should read {expected!r}, reads {reply['text']!r}")
    check(reply["stats"].startswith("7 tokens · ") and "length" in reply["stats"],
          f"stats of the split stream: {reply['stats']!r}")  # fmt: skip
    ok(f"stream parser: bytes split anywhere, CRLF, comments, multi-line data ({reply['stats']})")

    page.fill("#message", "fail")
    page.click("#send")
    page.wait_for_function("() => document.getElementById('error').textContent !== ''")
    error = page.text_content("#error")
    check(error == "boom: the engine failed", f"#error should show the stream's error, shows {error!r}")
    last = page.locator(".assistant").last
    check(last.locator(".content").text_content() == "partial", "the text before the error should stay")
    check("failed" in (last.locator(".stats").text_content() or ""), "a failed reply's stats should say so")
    ok("stream parser: an error event mid-stream is shown, the text before it kept")
    check(not view.errors, f"JavaScript errors on the page: {view.errors}")
    view.close()


def phone(browser: Any, url: str, model_id: str, out: Path) -> None:
    size = {"width": 390, "height": 844}
    view = Page(browser, url, viewport=size, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = view.page
    view.model_shown(model_id)
    page.fill("#max-tokens", "60")
    view.ask(MESSAGES[3])
    for selector in ("#message", "#send", "#temperature", "#top-p", "#max-tokens", "#new-chat"):
        view.inside_viewport(selector)
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    check(widths[0] <= widths[1],
          f"the page scrolls sideways on a phone: scrollWidth {widths[0]} > innerWidth {widths[1]}")  # fmt: skip
    ok(f"phone 390x844: input, Send and settings are on screen, no sideways scroll (width {widths[0]})")
    view.screenshot(out / "chat_page_phone.png")
    ok(f"phone: screenshot {out / 'chat_page_phone.png'}")
    view.close()


def with_key(browser: Any, url: str, model_id: str) -> None:
    status, _ = get(url + "/v1/models")
    check(status == 401, f"GET /v1/models without the key should be 401, was {status}")
    status, _ = get(url + "/health")
    check(status == 200, f"GET /health should not need the key, got {status}")

    view = Page(browser, url, viewport={"width": 1000, "height": 700})
    page = view.page
    try:
        page.wait_for_selector("#api-key", state="visible", timeout=20_000)
    except PlaywrightTimeout:
        error = page.text_content("#error")
        raise Failure(f"#api-key did not appear for a server with a key; #error says {error!r}") from None
    ok("key: the page asks for the API key")

    page.fill("#api-key", "wrong-key")
    page.click("#save-key")
    page.wait_for_function("() => document.getElementById('key-note').textContent.includes('refused')")
    check(page.is_visible("#api-key"), "a wrong key should be asked again")
    ok("key: a wrong key is refused and asked again")

    page.fill("#api-key", KEY)
    page.click("#save-key")
    view.model_shown(model_id)
    check(not page.is_visible("#api-key"), "#api-key should hide once the key works")
    stored = page.evaluate("Object.values(localStorage)")
    check(KEY in stored, f"the key should be kept in localStorage, which holds {stored}")
    reply = view.ask(MESSAGES[0])
    auth = view.sent[-1].headers.get("authorization")
    check(auth == f"Bearer {KEY}", f"the chat request should carry 'Bearer {KEY}', carried {auth!r}")
    ok(f"key: with the key saved, a message gets a reply ({reply['stats']})")

    page.reload()
    view.model_shown(model_id)
    check(not page.is_visible("#api-key"), "after a reload the saved key should be used without asking")
    ok("key: after a reload the saved key is used")
    view.close()


# ---- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, help="checkpoint to serve (default: train a tiny one)")
    parser.add_argument("--out", type=Path, help="folder for the screenshots (default: a temporary folder)")
    args = parser.parse_args()

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("FAIL: no chromium on PATH; install it with: apt-get install -y chromium", file=sys.stderr)
        return 1
    out = args.out or Path(tempfile.mkdtemp(prefix="mygpt-browser-"))
    out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    servers: list[Server] = []
    try:
        with ExitStack() as stack:
            if args.ckpt is None:
                workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mygpt-browser-ckpt-")))
                ckpt = train_checkpoint(workdir)
                ok(f"trained a tiny model: {ckpt.name}")
            else:
                ckpt = args.ckpt
                check(ckpt.is_file(), f"--ckpt {ckpt} is not a file")
            # Stopped before the checkpoint's folder is removed, on any way out (Ctrl-C too).
            stack.callback(stop, servers)
            # Both servers load at once: loading is most of their start-up.
            servers += [Server(ckpt), Server(ckpt, "--api-key", KEY)]
            open_url, key_url = (server.wait_ready() for server in servers)
            status, models = get(open_url + "/v1/models")
            check(status == 200 and models.get("data"), f"GET /v1/models answered {status}: {models}")
            model_id = models["data"][0]["id"]
            ok(f"servers up at {open_url} and {key_url} (with --api-key)")

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, headless=True)
                desktop(browser, open_url, model_id, out)
                phone(browser, open_url, model_id, out)
                split_stream(browser, open_url)
                with_key(browser, key_url, model_id)
                browser.close()
    except (Failure, PlaywrightError) as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        for server in servers:
            print(f"{server.name} stderr:\n{server.log()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the servers are stopped", file=sys.stderr)
        return 130
    print(f"all checks passed in {time.monotonic() - started:.0f}s; screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
