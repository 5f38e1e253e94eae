"""scripts/split_dev.py: a dev file split into a selection half and a reporting half."""

import json
import os

import split_dev


def _conll(sentences):
    return "".join("".join(f"{w}\t{t}\n" for w, t in s) + "\n" for s in sentences)


def _blocks(path):
    return [b for b in open(path, encoding="utf-8").read().split("\n\n") if b.strip()]


def test_split_is_a_deterministic_partition(tmp_path, capsys):
    sents = [[(f"w{i}", "B-PER"), (f"x{i % 7}", "O")] for i in range(200)]
    sents.append(sents[0])  # a duplicate lands on the same side as its twin
    src = tmp_path / "dev.conll"
    src.write_text(_conll(sents), encoding="utf-8")
    outs = []
    for run in range(2):
        sel, rep = tmp_path / f"r{run}" / "select.conll", tmp_path / f"r{run}" / "report.conll"
        assert split_dev.main([str(src), "--format", "conll", "--select", str(sel), "--report", str(rep)]) == 0
        counts = json.loads(capsys.readouterr().out)
        outs.append((_blocks(sel), _blocks(rep)))
        assert counts["select"] + counts["report"] == len(sents)
    (a, b), (a2, b2) = outs
    assert (a, b) == (a2, b2)  # deterministic
    assert sorted(a + b) == sorted(_blocks(src))  # a partition: nothing lost, nothing invented
    assert 60 < len(a) < 140  # about half each
    first = _blocks(src)[0]
    assert (a.count(first), b.count(first)) in ((2, 0), (0, 2))
    # another salt gives another split
    sel, rep = tmp_path / "s" / "select.conll", tmp_path / "s" / "report.conll"
    assert (
        split_dev.main([str(src), "--format", "conll", "--salt", "2", "--select", str(sel), "--report", str(rep)]) == 0
    )
    assert _blocks(sel) != a


def test_tsv_and_max_examples(tmp_path, capsys):
    src = tmp_path / "dev.tsv"
    src.write_text("".join(f"{'positive' if i % 2 else 'negative'}\ttext number {i}\n" for i in range(100)))
    sel, rep = tmp_path / "select.tsv", tmp_path / "report.tsv"
    args = [str(src), "--format", "tsv", "--max-examples", "10", "--select", str(sel), "--report", str(rep)]
    assert split_dev.main(args) == 0
    assert json.loads(capsys.readouterr().out) == {"input": str(src), "select": 10, "report": 10}
    lines = open(sel).read().splitlines() + open(rep).read().splitlines()
    assert len(set(lines)) == 20 and set(lines) <= set(src.read_text().splitlines())


def test_bad_input_names_the_line_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "dev.conll"
    src.write_text("a\tB-PER\nb\tO\n\nc\tO\nd e f\n\n", encoding="utf-8")
    sel, rep = tmp_path / "out" / "select.conll", tmp_path / "out" / "report.conll"
    assert split_dev.main([str(src), "--format", "conll", "--select", str(sel), "--report", str(rep)]) == 1
    err = capsys.readouterr().err
    assert f"{src}:5" in err
    assert not sel.exists() and not rep.exists()
    one = tmp_path / "one.conll"
    one.write_text("a\tO\n\n", encoding="utf-8")
    assert split_dev.main([str(one), "--format", "conll", "--select", str(sel), "--report", str(rep)]) == 1
    assert "too few examples" in capsys.readouterr().err
    assert not os.path.exists(sel) and not os.path.exists(rep)


# ---- a half is known as a half afterwards (issue 28: results lines say what they were scored on) ---------------------


def _dev(tmp_path, n=120):
    src = tmp_path / "dev.conll"
    src.write_text(_conll([[(f"w{i}", "B-PER"), (f"x{i % 7}", "O")] for i in range(n)]), encoding="utf-8")
    sel, rep = tmp_path / "halves" / "select.conll", tmp_path / "halves" / "report.conll"
    assert split_dev.main([str(src), "--format", "conll", "--select", str(sel), "--report", str(rep)]) == 0
    return src, sel, rep


def test_each_half_gets_a_record_and_results_on_it_are_labelled_dev_half(tmp_path, capsys):
    from xlt_fairseq.experiments.results import evaluation_label

    src, sel, rep = _dev(tmp_path)
    record = json.loads(open(str(rep) + ".split.json").read())
    assert (record["half"], record["of"], record["salt"], record["examples"]) == (
        "report",
        str(src),
        "",
        len(_blocks(rep)),
    )
    label = evaluation_label(str(rep), "test", "conll", str(sel))
    assert label["eval_split"] == "dev-half" and label["eval_half_of"] == str(src) and label["eval_half"] == "report"
    assert label["eval_evidence"] == "report.conll.split.json" and label["eval_path"] == str(rep)
    assert evaluation_label(str(sel), "valid", "conll")["eval_split"] == "dev-half"
    # the dev file itself: "dev", whether read as the valid split or given as a test file
    assert evaluation_label(str(src), "test", "conll", str(src))["eval_split"] == "dev"
    assert evaluation_label(str(src), "valid", "conll")["eval_split"] == "dev"
    # a file of other sentences given as the test split: "test", even when named like a half
    other = tmp_path / "other" / "report.conll"
    other.parent.mkdir()
    other.write_text(_conll([[(f"t{i}", "B-LOC"), ("y", "O")] for i in range(60)]), encoding="utf-8")
    assert evaluation_label(str(other), "test", "conll", str(sel))["eval_split"] == "test"


def test_a_half_without_its_record_is_known_by_the_split_signature(tmp_path, capsys):
    """Halves written before the records existed (runs/dev-split of the earlier grids): every example on one side
    of the unsalted hash; a salted split needs its record; a changed half's record is ignored."""
    from xlt_fairseq.data.dev_split import MIN_SIGNATURE, half_of
    from xlt_fairseq.experiments.results import evaluation_label

    src, sel, rep = _dev(tmp_path)
    os.remove(str(rep) + ".split.json")
    label = evaluation_label(str(rep), "test", "conll")
    assert label["eval_split"] == "dev-half" and "report side" in label["eval_evidence"] and "eval_half_of" not in label
    # too few examples to tell: the signature is not trusted below MIN_SIGNATURE
    few = tmp_path / "few.conll"
    few.write_text("".join(_blocks(rep)[: MIN_SIGNATURE - 1][i] + "\n\n" for i in range(MIN_SIGNATURE - 1)))
    assert half_of(str(few), "conll") is None
    # a salted split is only known by its record
    sel2, rep2 = tmp_path / "s" / "select.conll", tmp_path / "s" / "report.conll"
    assert (
        split_dev.main([str(src), "--format", "conll", "--salt", "x", "--select", str(sel2), "--report", str(rep2)])
        == 0
    )
    assert evaluation_label(str(rep2), "test", "conll")["eval_split"] == "dev-half"
    os.remove(str(rep2) + ".split.json")
    assert evaluation_label(str(rep2), "test", "conll")["eval_split"] == "test"
    # a record whose half was changed since is ignored (the file is judged by itself)
    assert (
        split_dev.main([str(src), "--format", "conll", "--salt", "x", "--select", str(sel2), "--report", str(rep2)])
        == 0
    )
    with open(rep2, "a", encoding="utf-8") as f:
        f.write("new\tO\n\n")
    assert evaluation_label(str(rep2), "test", "conll")["eval_split"] == "test"


def test_old_result_lines_get_their_label_when_read(tmp_path, capsys):
    from xlt_fairseq.experiments.result_tables import load_many

    src, sel, rep = _dev(tmp_path)
    os.remove(str(rep) + ".split.json")  # as the earlier grids' halves
    base = {"run_id": "r", "selection_rule": "target-dev", "test_split": "test", "test_format": "conll"}
    lines = [
        {**base, "test_set": "ner/sw", "test_path": str(rep)},
        {**base, "test_set": "ner/yo", "test_path": str(tmp_path / "gone.conll")},
        {**base, "test_set": "ner/zu", "test_path": str(src), "test_split": "valid"},
        {**base, "test_set": "ner/en", "test_path": str(rep), "eval_split": "test", "eval_path": "/kept/as/written"},
    ]
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in lines))
    got = {r["test_set"]: r for r in load_many([str(results)])}
    assert got["ner/sw"]["eval_split"] == "dev-half" and got["ner/sw"]["eval_path"] == str(rep)
    assert got["ner/yo"]["eval_split"] == "unknown"  # the file is gone: nothing to tell it by
    assert got["ner/zu"]["eval_split"] == "dev"
    assert (got["ner/en"]["eval_split"], got["ner/en"]["eval_path"]) == ("test", "/kept/as/written")
