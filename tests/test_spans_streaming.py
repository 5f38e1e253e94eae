"""Entity spans (XLTModel.entities, xlt-predict --output-format spans) and streamed
prediction (chunks of --chunk-size, a lazy reader, one warning for long inputs), on
the tiny model of test_hub."""

import json
import logging

import pytest

from tests.test_hub import hub, predict, trained_model  # noqa: F401  (module fixtures)

# quotes, punctuation glued to words, non-ASCII words, a repeated word, several spaces
TEXTS = [
    '"Aper1 aka" alisema Aloc2, Aloc2 !',
    "  Ázörg1 binc   Borg1 binc. Aper1",
    "«Aloc2» — Aper1’s aka Aper1 aka",
    "",
]


# ---- spans -----------------------------------------------------------------------------------------------------------


def _words(text, labels, probs):
    from xlt_fairseq.data.words import split_words

    words, spans = split_words(text)
    assert len(words) == len(labels)
    rows = zip(words, labels, probs, spans)
    return [{"word": w, "label": lab, "prob": p, "start": s, "end": e} for w, lab, p, (s, e) in rows]


def test_entity_spans_are_offsets_into_the_original_text():
    """Quotes and punctuation split off, non-ASCII letters, a repeated word (each occurrence its own
    offsets), an entity over several words keeps the text's own spacing, I- after O starts an entity
    (seqeval's reading, as entity F1 counts it)."""
    from seqeval.metrics.sequence_labeling import get_entities

    from xlt_fairseq.models.hub_interface import entity_spans

    text = '"Ñairobi  City" na Ñairobi, “Zürich”!'
    # words: " Ñairobi City " na Ñairobi , “ Zürich ” !
    labels = ["O", "B-LOC", "I-LOC", "O", "O", "B-LOC", "O", "O", "I-LOC", "O", "O"]
    probs = [0.9, 0.8, 0.6, 0.9, 0.9, 0.7, 0.9, 0.9, 0.5, 0.9, 0.9]
    spans = entity_spans(text, _words(text, labels, probs), get_entities)
    assert spans == [
        {"text": "Ñairobi  City", "label": "LOC", "start": 1, "end": 14, "score": 0.7},
        {"text": "Ñairobi", "label": "LOC", "start": 19, "end": 26, "score": 0.7},
        {"text": "Zürich", "label": "LOC", "start": 29, "end": 35, "score": 0.5},
    ]
    for s in spans:
        assert text[s["start"] : s["end"]] == s["text"]
    # pre-split words: offsets into the words joined by single spaces
    words = ["Ñairobi", "City", "na", "Ñairobi"]
    recs = [{"word": w, "label": lab, "prob": 1.0} for w, lab in zip(words, ["B-LOC", "I-LOC", "O", "B-PER"])]
    assert entity_spans(words, recs, get_entities) == [
        {"text": "Ñairobi City", "label": "LOC", "start": 0, "end": 12, "score": 1.0},
        {"text": "Ñairobi", "label": "PER", "start": 16, "end": 23, "score": 1.0},
    ]


def test_entities_agree_with_the_word_labels(hub):  # noqa: F811
    from seqeval.metrics.sequence_labeling import get_entities

    tagged = hub.tag(TEXTS, lang="aa")
    found = hub.entities(TEXTS, lang="aa")
    assert len(found) == len(TEXTS) and sum(len(e) for e in found) >= 3  # the tiny model does find entities
    for text, words, ents in zip(TEXTS, tagged, found):
        expected = get_entities([w["label"] for w in words])
        assert [(e["label"], e["start"], e["end"]) for e in ents] == [
            (lab, words[a]["start"], words[b]["end"]) for lab, a, b in expected
        ]
        for e, (_, a, b) in zip(ents, expected):
            assert text[e["start"] : e["end"]] == e["text"]
            assert e["score"] == pytest.approx(sum(w["prob"] for w in words[a : b + 1]) / (b - a + 1), abs=1e-6)
    assert hub.entities(TEXTS[0]) == found[0]  # a single text gives a single list


def test_predict_spans_output(trained_model, hub):  # noqa: F811
    rc, out, err = predict(
        ["--model", trained_model["model"], "--task", "ner", "--output-format", "spans", "--lang", "aa"],
        "\n".join(TEXTS) + "\n",
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0, err
    assert [r["text"] for r in rows] == TEXTS  # the lines as written: offsets count in them
    assert [r["entities"] for r in rows] == hub.entities(TEXTS)
    rc, _, err = predict(["--model", trained_model["model"], "--task", "sentiment", "--output-format", "spans"], "a\n")
    assert rc == 1 and "spans is for tagging" in err


def test_a_language_the_task_was_not_trained_on_is_named(trained_model, caplog):  # noqa: F811
    from xlt_fairseq.models.xlt_model import XLTModel

    fresh = XLTModel.from_pretrained(trained_model["model"], device="cpu")
    assert fresh.task_languages("ner") == ["aa", "bb"] and fresh.task_languages("translation") == ["aa"]
    with caplog.at_level(logging.WARNING):
        fresh.tag("aka", lang="bb")
        fresh.check_language("bb", "translation")
        fresh.check_language("bb", "translation")  # once per language and task
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["'bb' is not among the translation head's training languages (aa): zero-shot"]


# ---- streaming -------------------------------------------------------------------------------------------------------


def _lines(n):
    import random

    rng = random.Random(1)
    pool = ["Aper1", "aka", "ake", "Aloc2", ",", "bka", "Borg1", "binc", "«ñ»", "aka."]
    return [" ".join(rng.choice(pool) for _ in range(rng.randint(0, 12))) for _ in range(n)]


@pytest.mark.parametrize("task,fmt", [("ner", "spans"), ("ner", "conll"), ("sentiment", "tsv")])
def test_small_chunks_give_the_output_of_one_chunk(trained_model, tmp_path, task, fmt):  # noqa: F811
    lines = _lines(230)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    outputs = []
    for chunk in ("7", "1000"):
        out = tmp_path / f"out-{chunk}"
        rc, _, err = predict(
            ["--model", trained_model["model"], "--task", task, "--input", str(src), "--output", str(out)]
            + ["--output-format", fmt, "--chunk-size", chunk, "--batch-size", "5"]
        )
        assert rc == 0, err
        outputs.append(out.read_text(encoding="utf-8"))
    # the same records; probabilities within 1e-5 (fp32 sums depend on the padding of a batch)
    a, b = (_parsed(o, fmt) for o in outputs)
    assert a["exact"] == b["exact"] and a["probs"] == pytest.approx(b["probs"], abs=1e-5)
    lines_out = outputs[0].splitlines()
    n_records = lines_out.count("") if fmt == "conll" else len(lines_out)  # conll: a blank line ends each input
    assert n_records == len(lines)


def _parsed(output, fmt):
    """The output's text, labels and offsets (exact) apart from its probabilities."""
    exact, probs = [], []
    for line in output.splitlines():
        if fmt == "spans":
            row = json.loads(line)
            exact.append([row["text"]] + [{k: v for k, v in e.items() if k != "score"} for e in row["entities"]])
            probs += [e["score"] for e in row["entities"]]
        elif fmt == "tsv":
            label, prob, text = line.split("\t")
            exact.append((label, text))
            probs.append(float(prob))
        else:
            exact.append(line)
    return {"exact": exact, "probs": probs}


def test_the_reader_is_lazy_and_chunks_are_bounded(trained_model, tmp_path, monkeypatch):  # noqa: F811
    """While a chunk is predicted, the reader has consumed at most the inputs of the chunks so far
    (plus the one pass that checks the file first): memory does not grow with the input."""
    from xlt_fairseq.cli import predict as predict_cli
    from xlt_fairseq.data import formats

    read = {"n": 0}
    original_iter_lines = formats.iter_lines

    def counting(path):
        for item in original_iter_lines(path):
            read["n"] += 1
            yield item

    monkeypatch.setattr(formats, "iter_lines", counting)
    seen = []
    original_predict = predict_cli.predict

    def spying(hub, task, inputs, args, output_format="jsonl"):  # noqa: F811
        seen.append((len(inputs), read["n"]))
        return original_predict(hub, task, inputs, args, output_format)

    monkeypatch.setattr(predict_cli, "predict", spying)
    n, chunk = 95, 10
    src = tmp_path / "in.txt"
    src.write_text("\n".join(_lines(n)) + "\n", encoding="utf-8")
    rc, _, err = predict(
        ["--model", trained_model["model"], "--task", "ner", "--input", str(src), "--chunk-size", str(chunk)]
        + ["--output", str(tmp_path / "out.jsonl")]
    )
    assert rc == 0, err
    assert [size for size, _ in seen] == [10] * 9 + [5]
    for i, (_, consumed) in enumerate(seen):
        assert consumed - n <= (i + 1) * chunk  # the checking pass read n lines; the predicting pass only this far


def test_an_input_error_stops_before_anything_is_written(trained_model, tmp_path):  # noqa: F811
    """The checking pass finds a bad line deep in the input before the first chunk is written, to stdout too."""
    good = [json.dumps({"text": t}) for t in _lines(30)]
    rc, out, err = predict(
        ["--model", trained_model["model"], "--task", "ner", "--format", "jsonl", "--chunk-size", "4"],
        "\n".join(good + ["[1, 2]"]) + "\n",
    )
    assert rc == 1 and out == "" and err.strip() == "error: <stdin>:31: expected a JSON object"


def test_a_stream_stopped_midway_or_redirected_onto_its_input_leaves_the_old_output(
    trained_model, tmp_path, monkeypatch  # noqa: F811
):
    """Chunks go to a temporary file next to --output: SIGTERM after the first chunk (the tool turns it into
    an exception) leaves the previous output and no temporary; an output made a link to the input while the
    tool ran is refused at the end (the output rule of xlt_fairseq/data/outputs.py), the input untouched."""
    import os
    import signal

    from xlt_fairseq.cli import predict as predict_cli
    from xlt_fairseq.data.staging import Interrupted

    src = tmp_path / "in.txt"
    src.write_text("\n".join(_lines(30)) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n", encoding="utf-8")
    argv = ["--model", trained_model["model"], "--task", "ner", "--input", str(src), "--output", str(out)]
    original_predict = predict_cli.predict
    calls = []

    def stopped(hub, task, inputs, args, output_format="jsonl"):  # noqa: F811
        calls.append(len(inputs))
        if len(calls) == 2:
            raise Interrupted(signal.SIGTERM)
        return original_predict(hub, task, inputs, args, output_format)

    monkeypatch.setattr(predict_cli, "predict", stopped)
    rc, stdout, err = predict(argv + ["--chunk-size", "10"])
    assert rc == 128 + signal.SIGTERM and err.strip() == "error: interrupted by SIGTERM; nothing was written", err
    assert out.read_text(encoding="utf-8") == "previous\n" and sorted(os.listdir(tmp_path)) == ["in.txt", "out.jsonl"]

    def redirected(hub, task, inputs, args, output_format="jsonl"):  # noqa: F811
        out.unlink()
        os.symlink(src, out)
        return original_predict(hub, task, inputs, args, output_format)

    monkeypatch.setattr(predict_cli, "predict", redirected)
    before = src.read_bytes()
    rc, _, err = predict(argv)
    assert rc == 1 and f"--output {out}: is the input --input {src}" in err and len(err.splitlines()) == 1, err
    assert src.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["in.txt", "out.jsonl"]


def test_long_inputs_are_counted_in_one_warning(trained_model, caplog):  # noqa: F811
    long_text = " ".join(["agood1 aka"] * 400)  # far more pieces than the tiny model's positions
    rc, out, err = predict(["--model", trained_model["model"], "--task", "sentiment"], f"{long_text}\naka\n{long_text}\n")
    assert rc == 0 and len(out.splitlines()) == 3
    assert "2 input(s) longer than the model's" in err and "truncated" in err
    rc, out, err = predict(["--model", trained_model["model"], "--task", "ner"], f"{long_text}\n")
    assert rc == 0 and "1 sentence(s) longer than the model's" in err and "tagged in windows" in err
    assert len(json.loads(out)["words"]) == 800  # windows: every word tagged


def test_loading_is_quiet_unless_verbose(trained_model):  # noqa: F811
    rc, out, err = predict(["--model", trained_model["model"], "--task", "ner"], "aka\n")
    assert rc == 0 and err == ""
    rc, out, err = predict(["--model", trained_model["model"], "--task", "ner", "--verbose"], "aka\n")
    assert rc == 0 and "INFO" in err and "tensorboardX" not in err
