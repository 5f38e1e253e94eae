# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The paired bootstrap of entity-F1 differences (xlt_fairseq/experiments/bootstrap.py) and xlt-bootstrap:
per-sentence counts reproduce seqeval on any resample, degenerate cases give their exact interval, a fixed seed
reproduces a direct loop over seqeval, an enumeration of every resample checks the distribution, and the
command line reads every prediction format the project writes."""

import itertools
import json
import random

import numpy as np
import pytest
from seqeval.metrics import f1_score

from xlt_fairseq.cli import bootstrap as cli
from xlt_fairseq.experiments import bootstrap as bs

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def _data(seed, n=30, noise=0.3):
    rng = random.Random(seed)
    gold = [[rng.choice(TAGS) for _ in range(rng.randint(1, 9))] for _ in range(n)]

    def system(p):
        return [[t if rng.random() > p else rng.choice(TAGS) for t in g] for g in gold]

    return gold, system


@pytest.mark.parametrize("seed", range(3))
def test_sentence_counts_give_seqeval_f1_on_any_resample(seed):
    gold, system = _data(seed)
    pred = system(0.4)
    counts = bs.sentence_counts(gold, pred)
    assert float(bs.f1_of_counts(counts.sum(axis=0))) == pytest.approx(f1_score(gold, pred), abs=1e-12)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        idx = rng.integers(0, len(gold), size=len(gold))  # duplicates: the same entity counted twice
        want = f1_score([gold[i] for i in idx], [pred[i] for i in idx])
        assert float(bs.f1_of_counts(counts[idx].sum(axis=0))) == pytest.approx(want, abs=1e-12)


def test_identical_systems_give_a_zero_interval():
    gold, system = _data(1)
    pred = system(0.3)
    out = bs.paired_bootstrap([bs.Language(gold, [pred], [pred], "sw")], samples=200)
    r = out["languages"]["sw"]
    assert r["ci"] == [0.0, 0.0] and r["diff"] == 0.0 and r["bootstrap_mean"] == 0.0
    assert r["share_a_not_better"] == 1.0


def test_a_constant_difference_gives_a_point_interval():
    """One gold entity per sentence; A finds each, B finds each plus a spurious one: on every resample of n
    sentences F1(B) = 2n / (2n + n) = 2/3, so F1(A) - F1(B) = 1/3 exactly, whichever sentences are drawn."""
    gold = [["B-PER", "I-PER", "O", "O"], ["O", "B-LOC", "O"], ["B-ORG", "O", "O", "O", "O"]] * 4
    spurious = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "B-LOC", "O"], ["B-ORG", "O", "B-PER", "O", "O"]] * 4
    out = bs.paired_bootstrap([bs.Language(gold, [gold], [spurious], "yo")], samples=300, seed=5)
    r = out["languages"]["yo"]
    assert r["f1_a"] == 1.0 and r["f1_b"] == pytest.approx(2 / 3)
    assert r["ci"] == pytest.approx([1 / 3, 1 / 3], abs=1e-12)
    assert r["bootstrap_mean"] == pytest.approx(1 / 3, abs=1e-12) and r["share_a_not_better"] == 0.0


def test_a_fixed_seed_reproduces_a_direct_loop_over_seqeval():
    """Two languages, A with two seeds and B with three: each replicate redrawn here from the documented stream
    and scored with seqeval itself (no counts), the seeds' F1 averaged, the languages' differences averaged."""
    langs = {}
    for k, lang in enumerate(("sw", "zu")):
        gold, system = _data(10 + k, n=12 + 5 * k)
        langs[lang] = (gold, [system(0.2), system(0.25)], [system(0.4), system(0.3), system(0.5)])
    samples, seed = 60, 7
    out = bs.paired_bootstrap([bs.Language(*v, name=k) for k, v in langs.items()], samples=samples, seed=seed)

    rng = np.random.default_rng(seed)
    per_lang = {lang: [] for lang in langs}
    for _ in range(samples):
        for lang, (gold, a, b) in langs.items():
            idx = rng.integers(0, len(gold), size=len(gold))
            g = [gold[i] for i in idx]
            fa = np.mean([f1_score(g, [p[i] for i in idx]) for p in a])
            fb = np.mean([f1_score(g, [p[i] for i in idx]) for p in b])
            per_lang[lang].append(fa - fb)
    for lang, (gold, a, b) in langs.items():
        r = out["languages"][lang]
        assert r["f1_a_seeds"] == pytest.approx([f1_score(gold, p) for p in a], abs=1e-12)
        assert r["diff"] == pytest.approx(
            np.mean([f1_score(gold, p) for p in a]) - np.mean([f1_score(gold, p) for p in b])
        )
        assert r["ci"] == pytest.approx(list(np.percentile(per_lang[lang], [2.5, 97.5])), abs=1e-12)
        assert r["bootstrap_mean"] == pytest.approx(np.mean(per_lang[lang]), abs=1e-12)
    mean = np.mean([per_lang[lang] for lang in langs], axis=0)
    assert out["mean"]["ci"] == pytest.approx(list(np.percentile(mean, [2.5, 97.5])), abs=1e-12)
    assert out["mean"]["diff"] == pytest.approx(np.mean([out["languages"][k]["diff"] for k in langs]), abs=1e-12)
    assert out["mean"]["names"] == ["sw", "zu"]
    assert out["languages"]["sw"]["ci"][0] < out["languages"]["sw"]["ci"][1]


def test_the_distribution_matches_an_enumeration_of_every_resample():
    """Four sentences: all 4^4 = 256 resamples are equally likely; the bootstrap's mean and interval must match
    the exact distribution's (within the Monte-Carlo error of 4,000 replicates)."""
    gold = [["B-PER", "O"], ["B-LOC", "I-LOC", "O"], ["O", "B-ORG"], ["B-PER", "B-LOC"]]
    a = [["B-PER", "O"], ["B-LOC", "I-LOC", "O"], ["O", "O"], ["B-PER", "B-ORG"]]
    b = [["B-PER", "O"], ["B-LOC", "O", "O"], ["O", "B-ORG"], ["O", "O"]]
    exact = []
    for idx in itertools.product(range(4), repeat=4):
        g = [gold[i] for i in idx]
        exact.append(f1_score(g, [a[i] for i in idx]) - f1_score(g, [b[i] for i in idx]))
    exact = np.array(exact)
    out = bs.paired_bootstrap([bs.Language(gold, [a], [b])], samples=4000, seed=3)["languages"][""]
    assert out["bootstrap_mean"] == pytest.approx(exact.mean(), abs=4 * exact.std() / np.sqrt(4000))
    # the interval's ends are quantiles of the exact distribution at nearby levels
    lo, hi = out["ci"]
    assert np.mean(exact <= lo + 1e-12) == pytest.approx(0.025, abs=0.03)
    assert np.mean(exact >= hi - 1e-12) == pytest.approx(0.025, abs=0.03)
    assert out["share_a_not_better"] == pytest.approx(np.mean(exact <= 0), abs=0.03)


def test_bad_inputs_are_refused():
    gold, system = _data(2, n=5)
    with pytest.raises(bs.BootstrapError, match="sentence 1"):
        bs.Language(gold, [[t + ["O"] for t in gold]], [gold])
    with pytest.raises(bs.BootstrapError, match="4 predicted sentences for 5"):
        bs.Language(gold, [gold[:4]], [gold])
    with pytest.raises(bs.BootstrapError, match="at least 1"):
        bs.paired_bootstrap([bs.Language(gold, [gold], [gold])], samples=0)
    with pytest.raises(bs.BootstrapError, match="once each"):
        bs.paired_bootstrap([bs.Language(gold, [gold], [gold], "sw")] * 2)


# ---- files and the command line ----------------------------------------------------------------------------------


def _sentences(seed, n=8):
    rng = random.Random(seed)
    gold = [[rng.choice(TAGS) for _ in range(rng.randint(1, 6))] for _ in range(n)]
    tokens = [[f"w{seed}_{i}_{j}" for j in range(len(g))] for i, g in enumerate(gold)]
    return tokens, gold


def _noisy(gold, seed, p):
    rng = random.Random(seed)
    return [[t if rng.random() > p else rng.choice(TAGS) for t in g] for g in gold]


def _write_conll(path, tokens, tags):
    path.write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(ws, ts)) + "\n" for ws, ts in zip(tokens, tags)))
    return str(path)


def _write_eval_jsonl(path, tokens, gold, pred):  # xlt-evaluate --save-predictions / the runner's predictions
    rows = [{"tokens": w, "gold": g, "pred": p} for w, g, p in zip(tokens, gold, pred)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _write_predict_jsonl(path, tokens, pred):  # xlt-predict's JSON Lines
    rows = [
        {"tokens": w, "words": [{"word": x, "label": t, "prob": 0.9} for x, t in zip(w, p)]}
        for w, p in zip(tokens, pred)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_every_prediction_format_reads_the_same(tmp_path):
    tokens, gold = _sentences(1)
    pred = _noisy(gold, 2, 0.4)
    files = [
        _write_conll(tmp_path / "p.conll", tokens, pred),
        _write_eval_jsonl(tmp_path / "p.jsonl", tokens, gold, pred),
        _write_predict_jsonl(tmp_path / "q.jsonl", tokens, pred),
    ]
    for f in files:
        got = bs.read_tagged_predictions(f)
        assert got.pred == pred and got.tokens == tokens
    assert bs.read_tagged_predictions(files[1]).gold == gold
    assert bs.read_tagged_predictions(files[0]).gold is None


def test_the_command_line_on_two_languages_and_three_seeds(tmp_path, capsys):
    want = {}
    files = {"a": [], "b": [], "gold": []}
    for k, lang in enumerate(("sw", "yo")):
        tokens, gold = _sentences(10 + k, n=15)
        files["gold"].append(f"{lang}=" + _write_conll(tmp_path / f"{lang}.gold.conll", tokens, gold))
        preds = {}
        for system, p in (("a", 0.2), ("b", 0.5)):
            preds[system] = [_noisy(gold, 100 * k + s + (50 if system == "b" else 0), p) for s in range(3)]
            for s, pred in enumerate(preds[system]):
                # seeds in different formats: every one the project writes is read
                writer = (
                    (lambda p_, t=tokens, q=pred: _write_conll(p_, t, q)),
                    (lambda p_, t=tokens, g=gold, q=pred: _write_eval_jsonl(p_, t, g, q)),
                    (lambda p_, t=tokens, q=pred: _write_predict_jsonl(p_, t, q)),
                )[s]
                files[system].append(
                    f"{lang}=" + writer(tmp_path / f"{system}{s}.{lang}.{'conll' if s == 0 else 'jsonl'}")
                )
        want[lang] = bs.Language(gold, preds["a"], preds["b"], lang)
    argv = ["--samples", "200", "--seed", "3", "--a", *files["a"], "--b", *files["b"], "--gold", *files["gold"]]
    argv += ["--output", str(tmp_path / "out.json")]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "out.json").read_text()) == out
    expected = bs.paired_bootstrap(list(want.values()), samples=200, seed=3)
    for lang in ("sw", "yo"):
        assert out["languages"][lang]["ci"] == pytest.approx(expected["languages"][lang]["ci"])
        assert len(out["languages"][lang]["f1_a_seeds"]) == 3
        assert out["files"][lang]["gold"].endswith(f"{lang}.gold.conll")
    assert out["mean"]["ci"] == pytest.approx(expected["mean"]["ci"]) and out["samples"] == 200

    # without --gold the gold tags come from the evaluation's JSON Lines (seed 2 of each system here)
    assert cli.main(["--samples", "50", "--a", *files["a"], "--b", *files["b"]]) == 0
    assert set(json.loads(capsys.readouterr().out)["languages"]) == {"sw", "yo"}


def test_the_command_line_refuses_files_of_other_sentences_in_one_line(tmp_path, capsys):
    tokens, gold = _sentences(1)
    other_tokens, _ = _sentences(2)
    g = _write_conll(tmp_path / "gold.conll", tokens, gold)
    a = _write_conll(tmp_path / "a.conll", tokens, _noisy(gold, 1, 0.3))
    shuffled = _write_conll(tmp_path / "b.conll", other_tokens[: len(tokens)], gold)
    short = _write_conll(tmp_path / "c.conll", tokens[:-1], gold[:-1])
    for b, message in ((shuffled, "sentence 1"), (short, "7 sentences, but")):
        assert cli.main(["--gold", g, "--a", a, "--b", b]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and b in err and message in err and "\n" not in err
    assert cli.main(["--a", a, "--b", a]) == 1  # CoNLL predictions carry no gold
    assert "no gold tags" in capsys.readouterr().err
    assert cli.main(["--gold", g, "--a", f"sw={a}", "--b", a]) == 1
    assert "language sw: predictions of system B missing" in capsys.readouterr().err
    assert cli.main(["--gold", g, "--a", f"sw={a}", a, "--b", a]) == 1
    assert "name the language" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tokens": ["a"], "gold": ["O"]}\n')
    assert cli.main(["--gold", g, "--a", a, "--b", str(bad)]) == 1
    assert f"{bad}:1: no predicted tags" in capsys.readouterr().err
