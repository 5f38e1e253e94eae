"""Option mistakes are refused before any data is loaded, naming the flag and
the fix; a one-language run turns the adversarial branch off instead of failing."""

import os

import pytest

from tests.conftest import run_train, train_args
from xlt_fairseq.training_policy import check_alternating


def _no_data_loaded(monkeypatch):
    """Makes any dataset load fail loudly, so a refusal is proven to come first."""
    from xlt_fairseq.tasks.xlt_multitask import XLTMultitaskTask

    def refuse(self, split, **kwargs):
        raise AssertionError(f"data was loaded ({split}) before the options were checked")

    monkeypatch.setattr(XLTMultitaskTask, "load_dataset", refuse)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--best-checkpoint-metric", "sentiment_acc"], "does not log it"),
        (["--best-checkpoint-metric", "ner_f1_zz", "--maximize-best-checkpoint-metric"], "does not log it"),
        (["--best-checkpoint-metric", "ner_f1"], "add --maximize-best-checkpoint-metric"),
        (["--best-checkpoint-metric", "ner_loss", "--maximize-best-checkpoint-metric"], "drop --maximize"),
        (["--best-checkpoint-metric", "bleu", "--maximize-best-checkpoint-metric", "--no-eval-bleu"], "no --no-eval"),
        (["--criterion", "cross_entropy"], "use --criterion xlt_multitask_adversarial"),
        (["--arch", "roberta_base"], "not an architecture of xlt_model"),
    ],
)
def test_option_mistakes_are_refused_before_data_is_loaded(tiny_data, tmp_path, monkeypatch, extra, message):
    args = train_args(tiny_data["data"], str(tmp_path / "ckpt"), max_update=2)
    if extra[0] in ("--criterion", "--arch"):
        args[args.index(extra[0]) + 1] = extra[1]
        extra = []
    else:
        i = args.index("--sentiment-langs")
        del args[i : i + 2]  # no sentiment corpora: sentiment_acc cannot be logged
    _no_data_loaded(monkeypatch)
    with pytest.raises(ValueError, match=message):
        run_train(args + extra)
    assert not os.path.exists(str(tmp_path / "ckpt" / "checkpoint_last.pt"))


def test_metrics_of_the_run_are_accepted(tiny_data, tmp_path):
    """Every per-corpus metric the check accepts is one validation really logs."""
    args = train_args(tiny_data["data"], str(tmp_path / "ckpt"), max_update=2)
    args += ["--best-checkpoint-metric", "ner_f1_bb", "--maximize-best-checkpoint-metric"]
    records = run_train(args)
    valid = records["valid"]
    assert valid and "valid_ner_f1_bb" in valid[-1]
    from fairseq import options, tasks

    parser = options.get_training_parser()
    cfg = options.parse_args_and_arch(parser, args)
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    task = tasks.setup_task(convert_namespace_to_omegaconf(cfg).task)
    choices = task.validation_metrics()
    logged = {k[len("valid_") :] for r in valid for k in r if k.startswith("valid_")}
    missing = {m for m in choices if m not in logged and m != "bleu" and not m.startswith("bleu_")}
    assert not missing, f"metrics offered but never logged: {missing}"


def test_plugin_criterion_with_a_foreign_task_is_refused(tiny_data, tmp_path):
    from xlt_fairseq.criterions.xlt_multitask_adversarial import XLTMultitaskAdversarialCriterion

    class Foreign:
        pass

    with pytest.raises(ValueError, match="needs --task xlt_multitask"):
        XLTMultitaskAdversarialCriterion(None, Foreign())


def test_alternating_mode_refuses_setups_that_would_move_both_sides():
    class Common:
        fp16 = True
        memory_efficient_fp16 = False

    with pytest.raises(ValueError, match="--memory-efficient-fp16"):
        check_alternating(Common(), "legacy_ddp", 1)
    Common.memory_efficient_fp16 = True
    check_alternating(Common(), "legacy_ddp", 1)
    with pytest.raises(ValueError, match="--ddp-backend legacy_ddp"):
        check_alternating(Common(), "pytorch_ddp", 2)
