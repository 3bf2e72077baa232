"""`mygpt serve`: a real server on 127.0.0.1, driven by the official `openai` client (the
oracle for OpenAI's shapes) and by plain HTTP for the errors.

The model is tiny and trained for a few steps; texts are compared with what `mygpt
generate` and the library's sampler give for the same prompt, settings and seed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import openai
import pytest
import torch
from conftest import make_text
from typer.testing import CliRunner

from mygpt import server
from mygpt.batching import RowSettings
from mygpt.chat import Conversation, prompt_from_messages, stream_text
from mygpt.cli import app
from mygpt.config import ChatConfig, ModelConfig, ServeConfig, TrainConfig
from mygpt.engine import Engine, Failed, Finished, Job, Text
from mygpt.prepare_config import PrepareConfig

PROMPT = "KING:\nThe"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mygpt as m

    root = tmp_path_factory.mktemp("serve")
    (root / "play.txt").write_text(make_text(), encoding="utf-8")
    folder = m.prepare(PrepareConfig(text=(str(root / "play.txt"),), out=str(root / "data"), workers=1))
    cfg = TrainConfig(data=str(folder), out_dir=str(root / "ck"), device="cpu", max_iters=40, eval_interval=40,
                      eval_iters=1, warmup_iters=0, lr=1e-2, batch_size=8,
                      model=ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=32))  # fmt: skip
    return Path(list(m.train(cfg))[-1].path)


@contextlib.contextmanager
def serving(ckpt: Path, **settings: Any) -> Iterator[tuple[str, server.Served]]:
    """A server in a thread of this process, at a free port; yields its address."""
    cfg = ServeConfig(port=0, device="cpu", **settings)
    sock = server.listen(cfg.host, cfg.port)
    served = server.load(cfg, ckpt)
    http = server.http_server(served)
    thread = threading.Thread(target=http.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not http.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield server.address(sock), served
    finally:
        http.should_exit = True
        thread.join(10)
        served.engine.close()


@pytest.fixture(scope="module")
def live(ckpt: Path) -> Iterator[tuple[str, server.Served]]:
    with serving(ckpt) as running:
        yield running


@pytest.fixture
def client(live: tuple[str, server.Served]) -> openai.OpenAI:
    return openai.OpenAI(base_url=live[0] + "/v1", api_key="unused", max_retries=0, timeout=60)


def model_id(live: tuple[str, server.Served]) -> str:
    return live[1].model_id


def post(url: str, path: str, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None,
         chunked: bool = False) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    """A plain HTTP request (a GET when there is no body); returns the status, headers and JSON body."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if chunked:
        pieces = iter([data[i : i + 4096] for i in range(0, len(data), 4096)])
        conn.request("POST", path, body=pieces, headers=hdrs, encode_chunked=True)
    else:
        conn.request("GET" if data is None else "POST", path, body=data, headers=hdrs)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(payload) if payload else None


def test_models_completion_and_chat_through_the_openai_client(live: tuple, client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == [model_id(live)] and model_id(live).startswith("gpt.c32.e32.h2.b2-")
    done = client.completions.create(model=model_id(live), prompt=PROMPT, max_tokens=20, temperature=0)
    assert done.choices[0].finish_reason == "length" and len(done.choices[0].text) == 20  # a character per token
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.total_tokens) == (
        len(PROMPT),
        20,
        len(PROMPT) + 20,
    )
    chat = client.chat.completions.create(model=model_id(live), messages=[{"role": "user", "content": "the king"}],
                                          max_tokens=15, temperature=0)  # fmt: skip
    assert chat.choices[0].message.role == "assistant" and chat.usage.completion_tokens <= 15
    assert chat.choices[0].finish_reason in ("stop", "length")


def test_greedy_text_is_what_generate_prints(live: tuple, client: openai.OpenAI, ckpt: Path) -> None:
    n = 50  # past the 32-token context: the row restarts from its recent tokens, as generate does
    api = client.completions.create(model=model_id(live), prompt=PROMPT, max_tokens=n, temperature=0).choices[0].text
    printed = CliRunner().invoke(app, ["generate", str(ckpt), "--prompt", PROMPT, "-n", str(n), "-t", "0",
                                       "--device", "cpu"]).stdout  # fmt: skip
    assert printed == PROMPT + api + "\n"


def test_streamed_text_equals_the_whole_answer(live: tuple, client: openai.OpenAI) -> None:
    args = dict(model=model_id(live), prompt=PROMPT, max_tokens=30, temperature=0.9, seed=7)
    whole = client.completions.create(**args).choices[0].text
    pieces = [c.choices[0].text for c in client.completions.create(stream=True, **args) if c.choices]
    assert "".join(pieces) == whole and len([p for p in pieces if p]) > 1
    chat = dict(model=model_id(live), messages=[{"role": "user", "content": "the queen"}], max_tokens=20, seed=3)
    answer = client.chat.completions.create(**chat).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **chat))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1


def test_a_seed_repeats_and_n_choices_are_the_seeds_that_follow(live: tuple, client: openai.OpenAI) -> None:
    args = dict(model=model_id(live), prompt=PROMPT, max_tokens=25, temperature=1.0)
    first, again = (client.completions.create(seed=11, **args).choices[0].text for _ in range(2))
    assert first == again
    three = client.completions.create(seed=11, n=3, **args)
    assert [c.index for c in three.choices] == [0, 1, 2] and three.usage.completion_tokens == 75
    singles = [client.completions.create(seed=11 + i, **args).choices[0].text for i in range(3)]
    assert [c.text for c in three.choices] == singles and len(set(singles)) > 1


def test_top_p_zero_keeps_only_the_most_likely_token(live: tuple, client: openai.OpenAI) -> None:
    args = dict(model=model_id(live), prompt=PROMPT, max_tokens=30)
    greedy = client.completions.create(temperature=0, **args).choices[0].text
    assert client.completions.create(temperature=1.5, top_p=0, seed=9, **args).choices[0].text == greedy


def test_a_stop_string_ends_the_text_before_it(live: tuple, client: openai.OpenAI) -> None:
    args = dict(model=model_id(live), prompt=PROMPT, max_tokens=40, temperature=0)
    full = client.completions.create(**args).choices[0].text
    stop = full[12:15]
    cut = client.completions.create(stop=[stop, "never appears"], **args).choices[0]
    assert cut.finish_reason == "stop" and cut.text == full[: full.index(stop)]
    streamed = "".join(
        c.choices[0].text for c in client.completions.create(stream=True, stop=stop, **args) if c.choices
    )
    assert streamed == cut.text


def test_chat_uses_the_template_and_stop_of_mygpt_chat(live: tuple, client: openai.OpenAI, ckpt: Path) -> None:
    from mygpt import checkpoint, sampling

    loaded = checkpoint.load(ckpt)
    cfg = ChatConfig(temperature=0, max_new_tokens=30, system="FOOL:\n", device="cpu")
    conversation = Conversation(loaded.tokenizer, loaded.model.config.block_size, cfg)
    conversation.ask("the king")
    conversation.reply(" of hope")
    ids = conversation.ask("and the queen")
    messages = [("system", "FOOL:"), ("user", "the king"), ("assistant", " of hope"), ("user", "and the queen")]
    assert prompt_from_messages(messages, loaded.tokenizer, loaded.model.config.block_size, cfg) == ids
    text = sampling.TextStream(loaded.tokenizer, cfg.stop)
    expected = "".join(stream_text(sampling.generate(loaded.model, ids, cfg, seed=0), text))
    reply = client.chat.completions.create(model=model_id(live), max_tokens=30, temperature=0,
                                           messages=[{"role": r, "content": t} for r, t in messages])  # fmt: skip
    assert reply.choices[0].message.content == expected


def test_eight_concurrent_clients_get_what_each_gets_alone(live: tuple, client: openai.OpenAI) -> None:
    prompts = [f"{w}:\n" for w in ("KING", "QUEEN", "FOOL", "The", "Hope", "Fear", "Land", "Spoke")]

    def ask(prompt: str) -> str:
        stream = client.completions.create(
            model=model_id(live), prompt=prompt, max_tokens=40, temperature=0, stream=True
        )
        return "".join(c.choices[0].text for c in stream if c.choices)

    alone = [ask(p) for p in prompts]
    before = live[1].engine.tokens
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(ask, prompts))
    assert together == alone
    assert live[1].engine.tokens - before == 8 * 40


def test_a_disconnected_stream_frees_its_row(live: tuple) -> None:
    url, served = live
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    body = json.dumps({"prompt": PROMPT, "max_tokens": 4000, "stream": True}).encode()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
    received = b""
    while b"data: " not in received:  # decoding has started
        received += sock.recv(4096)
    sock.close()
    deadline = time.monotonic() + 10
    while served.engine.load()["rows"] and time.monotonic() < deadline:
        time.sleep(0.02)
    tokens = served.engine.tokens
    time.sleep(0.2)
    assert served.engine.load()["rows"] == 0 and served.engine.tokens == tokens  # nothing computes for it
    assert tokens < 4000


@pytest.mark.parametrize(("body", "param"), [
    ({"prompt": "K", "temperature": 5}, "temperature"),
    ({"prompt": "K", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "K", "max_tokens": 5000}, "max_tokens"),
    ({"prompt": "K", "n": 99}, "n"),
    ({"prompt": "K", "logprobs": 2}, "logprobs"),
    ({"prompt": "K", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"prompt": "\u2603 not in the vocabulary"}, "prompt"),
    ({"max_tokens": 3}, "prompt"),
    ({"prompt": 5}, "prompt"),
    ({"prompt": "K", "max_tokens": "5"}, "max_tokens"),
    ({"prompt": "K", "stream": "yes"}, "stream"),
    ({"prompt": "K", "n": True}, "n"),
    ({"prompt": "K", "response_format": {"type": "json_object"}}, "response_format"),
    ({"prompt": "K", "stop": "K" * 257}, "stop"),
])  # fmt: skip
def test_invalid_fields_are_400_naming_the_field(live: tuple, body: dict, param: str) -> None:
    status, _, answer = post(live[0], "/v1/completions", body)
    assert status == 400 and answer["error"]["param"] == param and answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["message"]


def test_nulls_mean_the_default_and_chat_limits_name_their_field(live: tuple) -> None:
    status, _, answer = post(live[0], "/v1/completions", {"prompt": "K", "max_tokens": 2, "n": None, "stream": None})
    assert status == 200 and len(answer["choices"]) == 1
    status, _, answer = post(live[0], "/v1/chat/completions", {"messages": [{"role": "user", "content": "K"}],
                                                               "max_completion_tokens": 10**6})  # fmt: skip
    assert status == 400 and answer["error"]["param"] == "max_completion_tokens"


def test_the_prompt_limit_counts_the_template_of_every_turn(live: tuple) -> None:
    url = live[0]
    many = [{"role": "user", "content": ""}] * 10_000  # no text, but each turn is the template's tokens
    status, _, answer = post(url, "/v1/chat/completions", {"messages": many, "max_tokens": 1})
    assert status == 400 and answer["error"]["param"] == "messages" and "tokens" in answer["error"]["message"]
    status, _, answer = post(url, "/v1/chat/completions", {"messages": many[:300], "max_tokens": 1})
    assert status == 200 and answer["usage"]["prompt_tokens"] <= 32  # the oldest turns dropped to fit the context


def test_error_statuses(live: tuple) -> None:
    url = live[0]
    status, _, answer = post(url, "/v1/completions", None, raw=b"{not json")
    assert status == 400 and "JSON" in answer["error"]["message"]
    status, _, answer = post(url, "/v1/completions", None, raw=b'{"prompt": "K", "temperature": NaN}')
    assert status == 400 and "JSON" in answer["error"]["message"]
    status, _, answer = post(url, "/v1/completions", {"prompt": "K"}, {"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in answer["error"]["message"]
    status, headers, answer = post(url, "/v1/completions", None)  # a GET
    assert status == 405 and headers["allow"] == "POST" and answer["error"]["code"] == "method_not_allowed"
    assert post(url, "/v1/completions/", {"prompt": "K"})[0] == 404  # no redirect
    status, _, answer = post(url, "/v1/chat/completions", {"messages": [{"role": "assistant", "content": "hi"}]})
    assert status == 400 and answer["error"]["param"] == "messages"
    status, _, answer = post(url, "/v1/completions", {"model": "gpt-4o", "prompt": "K"})
    assert status == 404 and answer["error"]["code"] == "model_not_found"
    status, _, answer = post(url, "/v1/nothing", {"prompt": "K"})
    assert status == 404 and answer["error"]["message"].startswith("no route")
    big = {"prompt": "K" * 1_100_000}
    assert post(url, "/v1/completions", big)[0] == 413
    assert post(url, "/v1/completions", big, chunked=True)[0] == 413  # no Content-Length: counted as it comes


def test_a_body_that_trickles_in_is_refused_after_its_time(live: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    from mygpt import api_requests

    monkeypatch.setattr(api_requests, "BODY_SECONDS", 0.5)
    host, port = live[0].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"pro")  # fmt: skip
        assert sock.recv(4096).startswith(b"HTTP/1.1 408 ")


def test_an_api_key_guards_every_v1_route(ckpt: Path) -> None:
    with serving(ckpt, api_key="s3cret") as (url, served):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            status, _, answer = post(url, "/v1/completions", {"prompt": "K", "max_tokens": 1}, headers)
            assert status == 401 and answer["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
        good = openai.OpenAI(base_url=url + "/v1", api_key="s3cret", max_retries=0)
        assert good.completions.create(model=served.model_id, prompt="K", max_tokens=2).usage.completion_tokens == 2
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port))
        for path in ("/health", "/"):  # for scripts and the page: no key needed
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == 200 and response.read()


def test_a_full_queue_answers_503_with_retry_after(ckpt: Path) -> None:
    with serving(ckpt, max_batch=1, max_queue=1) as (url, served):
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        busy = client.completions.create(model=served.model_id, prompt="K", max_tokens=4000, stream=True)
        next(iter(busy))  # decoding: the one row is taken
        waiting = ThreadPoolExecutor(1).submit(post, url, "/v1/completions", {"prompt": "K", "max_tokens": 1})
        deadline = time.monotonic() + 10
        while served.engine.load()["queued"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        status, headers, answer = post(url, "/v1/completions", {"prompt": "K", "max_tokens": 1})
        assert status == 503 and headers["retry-after"] == "1" and answer["error"]["code"] == "queue_full"
        busy.close()  # leaving frees the row: the waiting request is answered
        assert waiting.result(timeout=30)[0] == 200


def test_an_empty_chat_prompt_starts_as_generate_does(ckpt: Path) -> None:
    with serving(ckpt, template="{text}") as (url, served):  # nothing around the user's text
        status, _, answer = post(
            url, "/v1/chat/completions", {"messages": [{"role": "user", "content": ""}], "max_tokens": 3}
        )
        assert status == 200 and answer["usage"]["prompt_tokens"] == 1 and answer["usage"]["completion_tokens"] == 3


def test_a_burst_is_taken_while_rows_are_free_and_the_queue_counts_requests(ckpt: Path) -> None:
    with serving(ckpt, max_batch=4, max_queue=1) as (url, served):
        with ThreadPoolExecutor(5) as pool:  # four rows free and one place in the queue: all five are taken
            answers = list(
                pool.map(lambda _: post(url, "/v1/completions", {"prompt": "K", "max_tokens": 20}), range(5))
            )
        assert [a[0] for a in answers] == [200] * 5
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        busy = client.completions.create(model=served.model_id, prompt="K", max_tokens=4000, n=2, stream=True)
        next(iter(busy))  # two rows decoding, two free
        four = ThreadPoolExecutor(1).submit(post, url, "/v1/completions", {"prompt": "K", "max_tokens": 1, "n": 4})
        deadline = time.monotonic() + 10
        while served.engine.load()["queued"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        # Two rows are free, but the request before it waits for four: this one would wait too.
        status, _, answer = post(url, "/v1/completions", {"prompt": "K", "max_tokens": 1})
        assert status == 503 and answer["error"]["code"] == "queue_full"
        busy.close()
        assert four.result(timeout=30)[0] == 200


@pytest.mark.parametrize("pos", ["rope", "learned", "sinusoidal"])
def test_rows_joining_at_any_step_give_the_tokens_generate_gives(pos: str) -> None:
    import mygpt
    from mygpt.batching import Batch
    from mygpt.config import SampleConfig

    torch.manual_seed(0)
    model = mygpt.GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=40, pos=pos))
    n = 40  # past the context: every row restarts from its recent tokens at least once
    rows = [  # (request, prompt, settings); request 2 has two choices: one prefill, copied
        (0, [1, 2, 3], RowSettings(0.9, None, 1.0, 3)), (1, [5] * 20, RowSettings(0.0)),  # a prompt longer than the context
        (2, [7, 8], RowSettings(1.2, 5, 0.9, 4)), (2, [7, 8], RowSettings(0.7, None, 0.5, 1)),
        (3, list(range(10)), RowSettings(0.9, None, 1.0, 8)),
    ]  # fmt: skip

    def alone(prompt: list[int], s: RowSettings) -> list[int]:
        cfg = SampleConfig(max_new_tokens=n, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)
        return [int(t) for t in mygpt.generate(model, prompt, cfg, s.seed, torch.device("cpu"))]

    batch, got, step = Batch(model, 4, torch.device("cpu")), {}, 0
    waiting = [[r for r in rows if r[0] == request] for request in range(4)]
    while waiting or batch.rows:
        if waiting and step % 3 == 0 and batch.free >= len(waiting[0]):  # a request every third step, room permitting
            request = waiting.pop(0)
            batch.add(request[0][0], request[0][1], [settings for _, _, settings in request])
        batch.sample()
        done = [
            r for r in batch.rows if len(r.tokens) == n or (r.owner == 1 and len(r.tokens) == 25)
        ]  # one leaves early
        got.update({(r.owner, r.settings.seed): r.tokens for r in done})
        batch.remove(done)
        if batch.rows:
            batch.feed()
        step += 1
    for request, prompt, settings in rows:
        expected = alone(prompt, settings)
        assert got[request, settings.seed] == (expected[:25] if request == 1 else expected)


def run_jobs(engine: Engine, jobs: list[tuple[list[int], list]]) -> list[list]:
    """Submit jobs (prompt, event list) and wait until each has finished or failed."""
    for prompt, events in jobs:
        engine.submit(Job(prompt, [RowSettings(temperature=0)], 12, (), events.append))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(e and isinstance(e[-1], (Finished, Failed)) for _, e in jobs):
        time.sleep(0.01)
    return [events for _, events in jobs]


def test_a_request_that_fails_fails_alone(ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mygpt
    from mygpt.batching import Batch

    loaded = mygpt.load_checkpoint(ckpt)
    prefill = Batch._prefill

    def failing(self: Batch, row: Any, i: int) -> None:  # a prompt this machine cannot run (out of memory, say)
        if row.context[0] == 0:
            raise RuntimeError("out of memory")
        prefill(self, row, i)

    monkeypatch.setattr(Batch, "_prefill", failing)

    def raising(event: Any) -> None:  # a caller whose callback breaks
        raise OSError("gone")

    engine = Engine(loaded.model, loaded.tokenizer, torch.device("cpu"), max_batch=4, max_queue=4).start()
    try:
        engine.submit(Job([5, 6], [RowSettings(temperature=0)], 12, (), raising))
        good, bad, again = run_jobs(engine, [([5, 6, 7], []), ([0, 1], []), ([7, 8], [])])
        assert engine.idle and engine._thread.is_alive()
    finally:
        engine.close()
    assert isinstance(bad[-1], Failed) and "out of memory" in bad[-1].message and len(bad) == 1
    assert isinstance(good[-1], Finished) and isinstance(again[-1], Finished) and good[-1].tokens == 12


def test_the_engine_ends_a_choice_at_the_end_of_text_token(ckpt: Path) -> None:
    import mygpt
    from mygpt.config import SampleConfig

    loaded = mygpt.load_checkpoint(ckpt)
    start = loaded.tokenizer.encode(PROMPT)
    greedy = [
        int(t) for t in mygpt.generate(loaded.model, start, SampleConfig(temperature=0, max_new_tokens=20), seed=0)
    ]
    end = next(i for i in range(1, 20) if greedy[i] not in greedy[:i])  # a token the greedy path meets late

    class WithEnd:  # the same vocabulary, with that token as the end of text
        eot_id = greedy[end]

        def __getattr__(self, name: str) -> Any:
            return getattr(loaded.tokenizer, name)

    events: list = []
    engine = Engine(loaded.model, WithEnd(), torch.device("cpu"), max_batch=2, max_queue=2).start()
    try:
        engine.submit(Job(start, [RowSettings(temperature=0)], 20, (), events.append))
        deadline = time.monotonic() + 10
        while not any(isinstance(e, Finished) for e in events) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        engine.close()
    text = "".join(e.text for e in events if isinstance(e, Text))
    assert text == loaded.tokenizer.decode(greedy[:end]) and events[-1] == Finished(0, "stop", end + 1)


@pytest.mark.slow
def test_the_command_prints_its_address_and_ctrl_c_exits_130(ckpt: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "mygpt", "serve", str(ckpt), "--port", "0", "--device", "cpu"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "MYGPT_API_KEY": "k"})  # fmt: skip
    try:
        line = proc.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        client = openai.OpenAI(base_url=match.group(1) + "/v1", api_key="k", max_retries=0)
        stream = client.completions.create(model=Path(ckpt).name.removesuffix(".safetensors"), prompt="K",
                                           max_tokens=30, stream=True)  # fmt: skip
        proc.send_signal(signal.SIGINT)  # while a request is in flight: it ends, then the server does
        assert "".join(c.choices[0].text for c in stream if c.choices)
        assert proc.wait(timeout=30) == 130
        assert "interrupted" in proc.stderr.read()
    finally:
        proc.kill()
