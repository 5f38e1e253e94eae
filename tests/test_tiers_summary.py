# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""examples/experiments/ner_tiers_summary.py: the tables, targets and Figure 2 of docs/results.md from results
files, completed by an earlier part of the grid whose results files are gone (its report folder's CSVs)."""

import csv
import importlib.util
import json
import os

import pytest

from tests.utils import REPO


def _summary():
    path = os.path.join(REPO, "examples", "experiments", "ner_tiers_summary.py")
    spec = importlib.util.spec_from_file_location("ner_tiers_summary", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(system, scenario, lang, seed, f1, rule="target-dev", order=1):
    return {
        "run_id": f"{scenario}/ner/{system}-{lang}/seed{seed}", "test_set": f"ner/{lang}", "selection_rule": rule,
        "system": system, "system_title": system.title(), "system_order": order, "scenario": scenario,
        "lang": lang, "seed": seed, "metrics": {"f1": f1},
    }


def _write_csv(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_summary_merges_an_earlier_part_and_plots_every_tier(tmp_path, capsys):
    rows = [_row("monolingual", "tier-1pct", lang, 1, f1) for lang, f1 in (("yo", 0.4), ("zu", 0.5))]
    rows += [_row("full", "tier-10pct", lang, s, 0.5 + 0.1 * s, order=6) for lang in ("sw", "yo", "zu") for s in (1, 2)]
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    t1 = dict(table="table1_ner", task="ner", selection_rule="target-dev", tier="low", metric="f1", std="", n=1,
              seeds="1", rel_impr_vs_mono_pct="")
    _write_csv(earlier / "table1_ner.csv", [
        dict(t1, scenario="tier-1pct", system="monolingual", system_title="Monolingual", lang="sw", mean=0.9),
        # the results file has yo: its value wins over the earlier part's
        dict(t1, scenario="tier-1pct", system="monolingual", system_title="Monolingual", lang="yo", mean=0.1),
    ] + [dict(t1, scenario="tier-100pct", system="full", system_title="Full", lang=lang, mean=m, std=0.01, n=3,
              seeds="1 2 3") for lang, m in (("sw", 0.7), ("yo", 0.5), ("zu", 0.6))])
    _write_csv(earlier / "fig2_ner.csv", [
        dict(task="ner", selection_rule="target-dev", system="full", system_title="Full", scenario="tier-100pct",
             percent_training_data=100.0, metric="f1", mean=0.6, std=0.02, n=3),
    ])
    out = tmp_path / "fig"
    assert _summary().main([str(results), "--previous", str(earlier), "--fig2", str(out)]) == 0
    text = capsys.readouterr().out
    # mixed cell: sw from the earlier part, yo and zu from the results: the mean of the three languages
    mono = next(line for line in text.splitlines() if "tier-1pct | target-dev | Monolingual" in line)
    assert "0.900 (1) †" in mono and "0.400 (1) |" in mono and f"**{(0.9 + 0.4 + 0.5) / 3:.3f} (1) †**" in mono
    full10 = next(line for line in text.splitlines() if "tier-10pct | target-dev" in line)
    assert "**0.650 ± 0.071 (2)**" in full10  # per-seed means 0.6 and 0.7
    full100 = next(line for line in text.splitlines() if "tier-100pct | target-dev" in line)
    assert "**0.600 ± 0.020 (3) †**" in full100  # the earlier part's own mean and std over seeds
    with open(out / "fig2_ner_all.csv", encoding="utf-8") as f:
        points = {(p["system"], float(p["percent_training_data"])): float(p["mean"]) for p in csv.DictReader(f)}
    assert points == pytest.approx({("monolingual", 1.0): 0.6, ("full", 10.0): 0.65, ("full", 100.0): 0.6})
    assert (out / "fig2_ner_all_target-dev.png").stat().st_size > 0


def test_summary_reads_the_time_per_run_off_the_queue_logs(tmp_path, capsys):
    log = tmp_path / "tiers_x" / "queue.log"
    log.parent.mkdir()
    log.write_text(
        "start tier-1pct/ner/full/seed1 17:38:07\nsome training output\n"
        "time tier-1pct/ner/full/seed1 wall=600.0 user=540.0 sys=30.0 maxrss_kb=2097152\n"
        "time tier-1pct/ner/multitask/seed1 wall=1200.0 user=1170.0 sys=0.0 maxrss_kb=1048576\n",
        encoding="utf-8",
    )
    assert _summary().main(["--times", str(log)]) == 0
    text = capsys.readouterr().out
    assert "| `tier-1pct/ner/full/seed1` | tiers_x | 10.0 min | 9.5 min | 2.0 GiB |" in text
    assert "| **all** | | **0.50 h** | **0.48 h** | |" in text


def test_an_earlier_single_seed_joins_the_later_seeds_of_its_cell(tmp_path, capsys):
    # the earlier part ran seed 1 of every language (its results file is gone); this part runs seeds 2 and 3
    rows = [_row("monolingual", "tier-100pct", lang, s, f1) for s in (2, 3)
            for lang, f1 in (("sw", 0.8), ("yo", 0.5), ("zu", 0.5))]
    rows.append(_row("monolingual", "tier-100pct", "sw", 1, 0.7))  # seed 1 of sw rerun here: it wins
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    t1 = dict(table="table1_ner", task="ner", scenario="tier-100pct", selection_rule="target-dev",
              system="monolingual", system_title="Monolingual", tier="low", metric="f1", std="", n=1, seeds="1",
              rel_impr_vs_mono_pct="")
    _write_csv(earlier / "table1_ner.csv", [dict(t1, lang="sw", mean=0.1), dict(t1, lang="yo", mean=0.2),
                                            dict(t1, lang="zu", mean=0.2)])
    _write_csv(earlier / "fig2_ner.csv", [
        dict(task="ner", selection_rule="target-dev", system="monolingual", system_title="Monolingual",
             scenario="tier-100pct", percent_training_data=100.0, metric="f1", mean=0.5, std="", n=1),
    ])
    assert _summary().main([str(results), "--previous", str(earlier)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "tier-100pct | target-dev | Monolingual" in x)
    cells = [c.strip() for c in line.split("|")]
    assert cells[5] == "0.767 ± 0.058 (3)"  # sw: 0.7 (rerun), 0.8, 0.8; not the earlier 0.1
    assert cells[6] == "0.400 ± 0.173 (3) †"  # yo: the earlier seed 1 (0.2) with seeds 2 and 3 (0.5)
    # per-seed means over sw/yo/zu: seed 1 (0.7 + 0.2 + 0.2) / 3 = 0.367, seeds 2 and 3: 0.6
    assert cells[8] == "**0.522 ± 0.135 (3) †**"


def test_target_3_averages_the_probe_over_seeds_against_lambda_0(tmp_path, capsys):
    rows = [_row(system, "tier-1pct", lang, s, f1) for s in (1, 2) for lang in ("sw", "yo", "zu")
            for system, f1 in (("grl_lambda_0", 0.60), ("grl_lambda_1", 0.595), ("grl_lambda_9", 0.40))]
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    probe = dict(scenario="tier-1pct", chance=0.25, probe_acc_input=0.97, probe_acc_before=0.99)
    _write_csv(tmp_path / "a.csv", [dict(probe, system="grl_lambda_1", seed=1, probe_acc_after=0.30),
                                    dict(probe, system="grl_lambda_9", seed=1, probe_acc_after=0.26),
                                    dict(probe, system="grl_lambda_0", seed=1, probe_acc_after=0.98)])
    _write_csv(tmp_path / "b.csv", [dict(probe, system="grl_lambda_1", seed=2, probe_acc_after=0.36)])
    assert _summary().main([str(results), "--probe", str(tmp_path / "a.csv"), "--probe", str(tmp_path / "b.csv")]) == 0
    out = capsys.readouterr().out
    lines = {x.split(":")[0]: x for x in out.splitlines() if x.startswith("- Target 3")}
    # seeds 1 and 2: 0.33 <= chance + 0.10, F1 0.595 within 0.01 of lambda 0's 0.600
    assert "probe 0.330 (2 seeds; chance 0.25), F1 0.595 (2 seeds) vs lambda 0 0.600 (2): **met**" in \
        lines["- Target 3, Grl_Lambda_1"]
    assert lines["- Target 3, Grl_Lambda_9"].endswith("**missed**")  # near chance, but the F1 is lost
    assert lines["- Target 3, Grl_Lambda_0"].endswith("**missed**")  # the language stays
    # the sweep's table: each measure averaged over the system's seeds; one no probe.csv has is shown as –
    assert "| Grl_Lambda_1 | 0.595 (2) | 0.330 | – | – | – (2) |" in out
    assert "| Grl_Lambda_0 | 0.600 (2) | 0.980 | – | – | – (1) |" in out
