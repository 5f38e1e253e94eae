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
    assert split_dev.main([str(src), "--format", "conll", "--salt", "2", "--select", str(sel), "--report", str(rep)]) == 0
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
