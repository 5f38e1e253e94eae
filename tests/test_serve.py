"""xlt-serve: real HTTP requests against a uvicorn server started on a free port (in a
thread of this process, serving the tiny model of test_hub), concurrent clients batched
dynamically with the records xlt-predict writes, limits and malformed bodies as 4xx
with a message."""

import concurrent.futures
import http.client
import json
import socket
import threading
import time

import pytest

from tests.test_hub import trained_model  # noqa: F401  (module fixture)

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def server(trained_model):  # noqa: F811
    from xlt_fairseq.models.xlt_model import XLTModel
    from xlt_fairseq.serving import ServeConfig, create_app, make_server

    hub = XLTModel.from_pretrained(trained_model["model"], device="cpu")
    config = ServeConfig(max_wait_ms=20, max_batch=64, max_texts=50, max_chars=500, max_body_bytes=20_000, beam=2)
    app = create_app(hub, config)
    srv = make_server(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield {"port": sock.getsockname()[1], "model": trained_model["model"], "app": app}
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


def request(port, method, path, body=None, raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = json.loads(resp.read() or b"null")
    conn.close()
    return resp.status, payload


def xlt_predict(model, task, texts, *extra):
    """xlt-predict's JSON Lines records of ``texts`` (one text per line)."""
    from tests.test_spans_streaming import predict

    rc, out, err = predict(["--model", model, "--task", task, *extra], "".join(t + "\n" for t in texts))
    assert rc == 0, err
    return [json.loads(line) for line in out.splitlines()]


def same_records(a, b):
    """Equal records, probabilities and scores within 1e-5 (a batch's padding moves fp32 sums)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_records(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same_records(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-5
    return a == b


TEXTS = ['"Aper1 aka" ake , Aloc2 .', "bka binc Borg1 binc", "aka", "Ázörg1 binc Borg1 binc. Aper1", "agood1 aka ake"]


def test_health_describes_the_model(server):
    status, body = request(server["port"], "GET", "/health")
    assert status == 200 and body["status"] == "ok"
    assert {"ner", "sentiment"} <= set(body["heads"]) and body["translation"] is True
    assert body["languages"]["ner"] == ["aa", "bb"] and body["limits"]["max_texts"] == 50


@pytest.mark.parametrize(
    "endpoint,task,extra",
    [
        ("tag", "ner", []),
        ("entities", "ner", ["--output-format", "spans"]),
        ("classify", "sentiment", []),
        ("translate", "translation", ["--beam", "2"]),
    ],
)
def test_each_endpoint_answers_the_records_of_xlt_predict(server, endpoint, task, extra):
    status, body = request(server["port"], "POST", f"/{endpoint}", {"texts": TEXTS, "lang": "aa"})
    assert status == 200, body
    assert same_records(body, xlt_predict(server["model"], task, TEXTS, *extra))


def test_concurrent_clients_are_batched_and_get_their_own_results(server):
    """32 clients at once, each with its own texts: every answer equals xlt-predict's on those texts,
    and the requests were served in fewer model calls than requests (dynamic batching)."""
    from tests.test_spans_streaming import _lines

    texts = _lines(64)
    expected = xlt_predict(server["model"], "ner", texts, "--output-format", "spans")
    before = request(server["port"], "GET", "/health")[1]["stats"]
    barrier = threading.Barrier(32)

    def client(i):
        mine = texts[2 * i : 2 * i + 2]
        barrier.wait()
        return i, request(server["port"], "POST", "/entities", {"texts": mine})

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(client, range(32)))
    for i, (status, body) in answers:
        assert status == 200 and same_records(body, expected[2 * i : 2 * i + 2]), i
    after = request(server["port"], "GET", "/health")[1]["stats"]
    assert after["requests"] - before["requests"] == 32
    assert after["model_calls"] - before["model_calls"] < 32 and after["largest_call"] > 2


@pytest.mark.parametrize(
    "path,body,status,message",
    [
        ("/tag", b"{not json", 422, "JSON decode error"),
        ("/tag", b'{"text": ["aka"]}', 422, "texts"),
        ("/tag", b'{"texts": "aka"}', 422, "valid list"),
        ("/tag", b'{"texts": ["aka", 3]}', 422, "valid string"),
        ("/tag", b'{"texts": ["aka"], "lang": 5}', 422, "valid string"),
        ("/classify", b'{"texts": ["aka"], "task": "ner"}', 422, "not a classification task"),
        ("/tag", b'{"texts": ["aka"], "task": "pos"}', 422, "no such head"),
        ("/tag", json.dumps({"texts": ["aka"] * 51}).encode(), 413, "51 texts in one request; at most 50"),
        ("/tag", json.dumps({"texts": ["aka", "a" * 501]}).encode(), 413, "texts[1]: 501 characters; at most 500"),
        ("/tag", json.dumps({"texts": ["a" * 400] * 60}).encode(), 413, "bytes; at most 20000"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_message(server, path, body, status, message):
    got, answer = request(server["port"], "POST", path, raw=body)
    assert got == status
    assert message in json.dumps(answer["detail"]), answer


def test_an_empty_list_and_unknown_paths(server):
    assert request(server["port"], "POST", "/tag", {"texts": []}) == (200, [])
    assert request(server["port"], "POST", "/nothing", {"texts": []})[0] == 404
    assert request(server["port"], "GET", "/tag")[0] == 405


def test_the_command_binds_localhost_by_default():
    from xlt_fairseq.cli.serve import build_parser

    args = build_parser().parse_args(["model_dir"])
    assert args.host == "127.0.0.1" and args.port == 8000
