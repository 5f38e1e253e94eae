"""The data layer under hostile conditions: damaged or inconsistent corpora are
refused when a run loads them (before the first update), naming the file;
resuming with other corpora is refused; preprocessing survives races, signals,
bad names and paths with nothing half-written."""

import json
import os
import shutil

import pytest
from fairseq import options, tasks, utils
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from tests.conftest import run_train, train_args
from xlt_fairseq.data.corpora import CorpusError, check_indexed, verify_corpus


def _task(data, tmp_path, *extra):
    args = options.parse_args_and_arch(options.get_training_parser(), train_args(data, str(tmp_path / "ck"), *extra))
    cfg = convert_namespace_to_omegaconf(args)
    utils.import_user_module(cfg.common)
    return cfg, tasks.setup_task(cfg.task)


@pytest.fixture
def data(tiny_data, tmp_path):
    """A private copy of the tiny data root, to damage."""
    out = str(tmp_path / "data")
    shutil.copytree(tiny_data["data"], out)
    return out


def _truncate(path, keep):
    with open(path, "r+b") as f:
        f.truncate(keep)


@pytest.mark.parametrize(
    "damage, where, problem",
    [
        (lambda p: _truncate(p + ".bin", os.path.getsize(p + ".bin") - 3), ".bin", "(truncated)"),
        (lambda p: _truncate(p + ".idx", os.path.getsize(p + ".idx") - 5), ".idx", "truncated or damaged"),
        (lambda p: _truncate(p + ".idx", 7), ".idx", "bad or truncated header"),
        (lambda p: open(p + ".bin", "ab").write(b"\0\0\0\0"), ".bin", "(damaged)"),
        (lambda p: os.remove(p + ".bin"), ".bin", "missing"),
    ],
)
def test_damaged_binaries_are_refused_when_the_corpus_is_loaded(data, tmp_path, damage, where, problem):
    prefix = os.path.join(data, "sentiment", "bb", "train.input")
    damage(prefix)
    with pytest.raises(CorpusError) as e:
        _task(data, tmp_path)
    assert f"{prefix}{where}:" in str(e.value) and problem in str(e.value)


def test_every_item_of_a_good_corpus_passes(tiny_data):
    sizes = check_indexed(os.path.join(tiny_data["data"], "ner", "aa", "train.input"))
    meta = verify_corpus(tiny_data["data"], "ner", "aa")
    assert len(sizes) == meta["splits"]["train"]["examples"] and sizes.min() >= 2


def test_split_listed_in_meta_but_missing_is_refused(data, tmp_path):
    for ext in ("bin", "idx"):
        os.remove(os.path.join(data, "mlm", "aa", f"valid.input.{ext}"))
    with pytest.raises(CorpusError, match=r"mlm/aa/valid.input.\{bin,idx\}: missing, although .*lists the valid"):
        _task(data, tmp_path)
    # a stream of a split (the labels of NER) is missing
    os.remove(os.path.join(data, "ner", "bb", "test.label.idx"))
    with pytest.raises(CorpusError, match="ner/bb/test.label.idx: missing"):
        verify_corpus(data, "ner", "bb")


def test_corpus_encoded_with_another_dictionary_is_refused(data, tmp_path):
    meta_path = os.path.join(data, "ner", "bb", "meta.json")
    meta = json.load(open(meta_path))
    meta["dict_md5"] = "0" * 32
    json.dump(meta, open(meta_path, "w"))
    with pytest.raises(CorpusError) as e:
        _task(data, tmp_path)
    assert f"{meta_path}: corpus ner/bb was encoded with another dictionary" in str(e.value)
    assert os.path.join(data, "dict.txt") in str(e.value)


def test_truncated_or_foreign_meta_json_names_the_file(data, tmp_path):
    meta_path = os.path.join(data, "sentiment", "aa", "meta.json")
    text = open(meta_path).read()
    open(meta_path, "w").write(text[: len(text) // 2])
    with pytest.raises(CorpusError, match=f"{meta_path}:[0-9]+: not valid JSON"):
        _task(data, tmp_path)
    open(meta_path, "w").write("[1, 2]\n")
    with pytest.raises(CorpusError, match=f"{meta_path}: not a corpus description"):
        _task(data, tmp_path)


def test_item_counts_that_disagree_with_meta_are_refused(data):
    meta_path = os.path.join(data, "ner", "aa", "meta.json")
    meta = json.load(open(meta_path))
    meta["splits"]["train"]["examples"] += 1
    json.dump(meta, open(meta_path, "w"))
    with pytest.raises(CorpusError, match="lists [0-9]+ train examples but the binarised files hold"):
        verify_corpus(data, "ner", "aa")


def test_corpus_longer_than_the_model_is_refused_before_the_first_update(data, tmp_path):
    save = tmp_path / "ck"
    # xlt_tiny has 128 positions; a 24-position model is shorter than the tiny corpora's sentences
    with pytest.raises(CorpusError) as e:
        run_train(train_args(data, str(save), "--max-positions", "24", max_update=2))
    msg = str(e.value)
    assert "positions (with <s>/</s>) but the model takes 24" in msg and "--max-positions 24" in msg
    assert not save.exists() or not any(f.endswith(".pt") for f in os.listdir(save))


def test_resuming_with_other_languages_is_refused(tiny_data, tmp_path):
    save = str(tmp_path / "ck")
    base = train_args(tiny_data["data"], save, max_update=2)
    run_train(base)
    swapped = list(base)
    swapped[swapped.index("--ner-langs") + 1] = "bb,aa"
    swapped[swapped.index("--max-update") + 1] = "4"
    with pytest.raises(CorpusError) as e:
        run_train(swapped)
    msg = str(e.value)
    assert "checkpoint_last.pt" in msg and "--ner-langs aa,bb" in msg and "--ner-langs bb,aa" in msg
    assert "--finetune-from-model" in msg
    # fine-tuning from it into a new run is not resuming: allowed
    tuned = list(swapped)
    tuned[tuned.index("--save-dir") + 1] = str(tmp_path / "ck2")
    run_train(tuned + ["--finetune-from-model", os.path.join(save, "checkpoint_last.pt")])
