"""The official metric suites (spdf_lib.metrics) on hand-made cases with known results, their errors,
their cache, and the tables built from them."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pandas as pd
import pytest

from conftest import needs_data
from spdf_lib import metrics
from spdf_lib.metrics import coco, mteval, reporting, scoring, suites
from spdf_lib.outputs import OutputsMismatchError, write_outputs

needs_java = pytest.mark.skipif(not coco.java_available(),
                                reason="no `java` on PATH: METEOR 1.5 and the COCO PTB tokenizer are Java programs "
                                       "(make test installs Debian's default-jre-headless)")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FORCE", raising=False)


def tok(texts):
    return [mteval.mteval_tokens(t) for t in texts]


# ------------------------------------------------------------------------ E2E BLEU and NIST (mteval)

def test_mteval_tokens_split_punctuation_and_lower_case():
    assert mteval.mteval_tokens("The Eagle, near Burger-King.") == ["the", "eagle", ",", "near", "burger-king", "."]
    assert mteval.mteval_tokens("costs 3.5 pounds") == ["costs", "3.5", "pounds"]
    assert mteval.mteval_tokens("") == [""]  # as the port's split(' ') makes it


def test_bleu_of_an_identical_output_is_100_and_ignores_case():
    assert mteval.bleu(tok(["The cat sat on the mat"]), [tok(["the cat sat on the mat"])]) == pytest.approx(100)


def test_bleu_hand_computed_precisions():
    # 7 output words against 6: 1- to 4-gram precisions 6/7, 5/6, 4/5, 3/4; no brevity penalty.
    value = mteval.bleu(tok(["the cat sat on the mat today"]), [tok(["the cat sat on the mat"])])
    assert value == pytest.approx(100 * (6 / 7 * 5 / 6 * 4 / 5 * 3 / 4) ** 0.25)


def test_bleu_brevity_penalty_and_closest_reference_tie_goes_to_the_shorter():
    short = mteval.bleu(tok(["the cat sat on the"]), [tok(["the cat sat on the mat"])])
    assert short == pytest.approx(100 * math.exp(1 - 6 / 5))
    # 5 output words, references of 4 and 6 words are equally close: the shorter one (4) sets the length.
    tie = mteval.bleu(tok(["a b c d e"]), [tok(["a b c d", "a b c d e f"])])
    assert tie == pytest.approx(100)


def test_bleu_clips_counts_by_the_best_single_reference():
    # "the" 4 times; at most 2 in any one reference: unigram precision 2/4.
    value = mteval.bleu(tok(["the the the the"]), [tok(["the cat the dog", "the end"])])
    assert value < 1  # higher orders have no match: the port's 1e-15 stand-in makes it near 0
    hits = [2, 0, 0, 0]
    expected = 100 * math.exp(sum(math.log(max(h, 1e-15) / c) for h, c in zip(hits, [4, 3, 2, 1])) / 4)
    assert value == pytest.approx(expected)


def test_nist_hand_computed():
    # References "a b c d" and "a b": 6 reference words; counts a 2, b 2, c 1, d 1; ab 2, bc 1, cd 1;
    # abc 1, bcd 1; abcd 1. Output "a b c d": unigram information (2 log2(6/2) + 2 log2(6/1)) / 4,
    # bigrams (log2(2/2) + log2(2/1) + log2(1/1)) / 3, trigrams (log2(2/1) + log2(1/1)) / 2,
    # the 4-gram log2(1/1) / 1. Length 4 against the mean reference length 3: no penalty.
    expected = (2 * math.log2(3) + 2 * math.log2(6)) / 4 + 1 / 3 + 1 / 2
    assert mteval.nist(tok(["a b c d"]), [tok(["a b c d", "a b"])]) == pytest.approx(expected)


def test_nist_length_penalty():
    # Output "a b" against "a b c d": unigram information 2 * log2(4) / 2 = 2, length ratio 1/2.
    beta = -math.log(0.5) / math.log(1.5) ** 2
    expected = 2 * math.exp(-beta * math.log(0.5) ** 2)
    assert mteval.nist(tok(["a b"]), [tok(["a b c d"])]) == pytest.approx(expected)


def test_e2e_bleu_and_nist_need_no_java():
    scores = suites.e2e_suite(["The Eagle is a coffee shop."], [["The Eagle is a coffee shop."]],
                              metrics=["BLEU", "NIST"])
    assert list(scores) == ["BLEU", "NIST"] and scores["BLEU"] == pytest.approx(100)


# ------------------------------------------------------------------------ WebNLG / DART (GenerationEval)

def test_lora_normalize_lowers_and_splits_non_word_characters():
    assert suites.lora_normalize("The cat's toy,\n  ok.") == "the cat ' s toy , ok ."
    assert suites.word_tokens('he said " cannot "') == "he said `` can not ``"


def test_ter_hand_computed_substitution_and_shift():
    assert suites.ter("a b c d".split(), "a b e d".split()) == pytest.approx(1 / 4)  # one substitution
    # Four edits without shifts, but one shift of the block "a b" (cost 1) turns it into the reference.
    assert suites.ter("c d a b".split(), "a b c d".split()) == pytest.approx(1 / 4)
    assert suites.ter([], "a b".split()) == pytest.approx(1.0)


def test_ter_agrees_with_pyter3():
    import pyter

    rng = random.Random(0)
    for _ in range(150):
        hyp = [rng.choice("abcdef") for _ in range(rng.randint(0, 9))]
        ref = [rng.choice("abcdef") for _ in range(rng.randint(1, 9))]
        assert suites.ter(hyp, ref) == pyter.ter(hyp, ref), (hyp, ref)


def test_generation_eval_identical_output_gives_bleu_100_and_ter_0():
    scores = suites.generation_eval_suite(["The cat's toy is red."], [["the cat ' s toy is red ."]],
                                          metrics=["BLEU", "TER"])
    assert scores == {"BLEU": pytest.approx(100), "TER": pytest.approx(0)}


def test_ter_is_the_minimum_over_the_first_six_references():
    hyp = ["a b c d"]
    assert suites.generation_eval_suite(hyp, [["w x y z", "a b c d"]], metrics=["TER"])["TER"] == 0
    # The matching reference is the 7th: it is not among the 6 the scripts keep.
    late = suites.generation_eval_suite(hyp, [["a b c e"] * 6 + ["a b c d"]], metrics=["TER"])["TER"]
    assert late == pytest.approx(1 / 4)


def test_ter_averages_over_the_real_segments_only():
    # One perfect and one all-wrong segment: (0 + 1) / 2, not over a third, empty segment.
    scores = suites.generation_eval_suite(["a b", "c d"], [["a b"], ["x y"]], metrics=["TER"])
    assert scores["TER"] == pytest.approx(0.5)


def test_generation_eval_bleu_uses_no_smoothing():
    # No 4-gram match anywhere: multi-bleu-detok.perl gives 0.
    assert suites.generation_eval_suite(["a b c d"], [["a b c x"]], metrics=["BLEU"])["BLEU"] == 0


@needs_java
def test_meteor_identical_is_one_and_disjoint_is_zero():
    assert coco.meteor({"0": ["the cat sat on the mat"]}, {"0": "the cat sat on the mat"}) == pytest.approx(1.0)
    assert coco.meteor({"0": ["the cat sat on the mat"]}, {"0": "green ideas sleep"}) == pytest.approx(0.0)
    partial = coco.meteor({"0": ["the cat sat on the mat"]}, {"0": "the cat lay on a mat"})
    better = coco.meteor({"0": ["the cat sat on the mat"]}, {"0": "the cat sat on a mat"})
    assert 0 < partial < better < 1


@needs_java
def test_e2e_suite_on_identical_outputs():
    refs = [["The Eagle is a cheap coffee shop near Burger King."], ["Zizzi serves Italian food in the city centre."]]
    scores = suites.e2e_suite([r[0] for r in refs], refs)
    assert list(scores) == list(suites.E2E_METRICS)
    assert scores["BLEU"] == pytest.approx(100)
    assert scores["METEOR"] == pytest.approx(1.0)
    assert scores["ROUGE-L"] == pytest.approx(1.0)
    assert scores["CIDEr"] == pytest.approx(10.0)  # CIDEr-D: cosine 1 at every order, times 10


@needs_java
def test_ptb_tokenizer_keeps_empty_texts_in_place():
    out = coco.ptb_tokenize({"a": ["The Eagle, near Burger King."], "b": [""], "c": ["two\nlines"], "d": [""]})
    assert out == {"a": ["the eagle near burger king"], "b": [""], "c": ["two lines"], "d": [""]}


# ------------------------------------------------------------------------ grouping, errors, cache

ROWS = {"source": ["s1", "s2", "s1"], "references": [["r1 a"], ["r2"], ["r1 b"]]}


def test_identical_inputs_are_merged_and_the_last_output_is_scored():
    grouped = suites.group_by_input(["h1", "h2", "h1 again"], ROWS["source"], ROWS["references"])
    assert grouped.hyps == ("h1 again", "h2")
    assert grouped.references == (("r1 a", "r1 b"), ("r2",))
    assert (grouped.inputs, grouped.disagreeing) == (3, 1)


def test_unknown_metric_task_and_summarization_are_refused():
    with pytest.raises(metrics.UnknownMetricError, match="'BLUE'.*BLEU, METEOR, TER"):
        metrics.score("dart", ["a", "b", "a"], ROWS, metrics=["BLUE"])
    with pytest.raises(ValueError, match="unknown task 'xsum'"):
        metrics.score("xsum", ["a"], ROWS)
    with pytest.raises(ValueError, match="perplexity"):
        metrics.score("summarization", ["a"], ROWS)


def test_misaligned_outputs_are_never_scored(monkeypatch):
    calls = []
    monkeypatch.setitem(scoring.SUITES, "dart", (lambda *a: calls.append(a) or {}, suites.GENERATION_EVAL_METRICS))
    with pytest.raises(OutputsMismatchError, match="2 outputs for 3 dart test inputs"):
        metrics.score("dart", ["a", "b"], ROWS)
    assert calls == []


def test_scores_are_cached_by_outputs_and_references(monkeypatch):
    calls = []

    def suite(hyps, refs, wanted):
        calls.append(hyps)
        return {"BLEU": float(len(calls))}

    monkeypatch.setitem(scoring.SUITES, "dart", (suite, suites.GENERATION_EVAL_METRICS))
    first = metrics.score("dart", ["a", "b", "c"], ROWS, metrics=["BLEU"])
    (entry,) = scoring.cache_dir().glob("dart-*.json")  # the only entry so far: the outputs 'a b c'
    assert metrics.score("dart", ["a", "b", "c"], ROWS, metrics=["BLEU"]) == first == {"BLEU": 1.0}
    assert metrics.score("dart", ["a", "B", "c"], ROWS, metrics=["BLEU"]) == {"BLEU": 2.0}
    assert len(calls) == 2
    # A damaged entry is recomputed, not read.
    entry.write_text(entry.read_text().replace("1.0", "7.0"))
    assert metrics.score("dart", ["a", "b", "c"], ROWS, metrics=["BLEU"]) == {"BLEU": 3.0}


# ------------------------------------------------------------------------ the real test sets

@needs_data
@pytest.mark.parametrize("task, entries, segments", [("e2e", 630, 630), ("webnlg", 1862, 1862),
                                                     ("dart", 5097, 4159)])
def test_grouping_by_source_matches_the_lora_key(task, entries, segments):
    from spdf_lib import data

    rows = data.load_task(task, "test")
    grouped = scoring._grouped(task, [str(i) for i in range(rows.num_rows)], rows)
    assert (grouped.inputs, len(grouped.hyps)) == (entries, segments)
    if task == "e2e":
        return
    # gpt2_decode.py keys the references by "subject : property : object | ..." from the raw triples,
    # DART's properties lower-cased: the same partition of the test entries.
    def lora_key(entry):
        parts = [t.split(" | ") for t in entry.triples]
        return " | ".join(f"{s} : {p.lower() if task == 'dart' else p} : {o}" for s, p, o in parts)

    by_eid = {e.eid: e for e in data.parse_benchmark_xml(data.task_files(task)[-1])}
    keys = [lora_key(by_eid[eid]) for eid in data.column(rows, "eid")]
    ours: dict[str, set] = {}
    theirs: dict[str, set] = {}
    for index, (source, key) in enumerate(zip(data.column(rows, "source"), keys)):
        ours.setdefault(source, set()).add(index)
        theirs.setdefault(key, set()).add(index)
    assert sorted(map(sorted, ours.values())) == sorted(map(sorted, theirs.values()))


@needs_data
def test_the_dart_reference_without_text_is_kept_as_an_empty_reference():
    from spdf_lib import data

    rows = data.load_task("dart", "test")
    grouped = scoring._grouped("dart", [""] * rows.num_rows, rows)
    with_empty = [refs for refs in grouped.references if "" in refs]
    assert len(with_empty) == 1 and len(with_empty[0]) <= suites.REFERENCES_KEPT  # so its position does not matter


# Outputs of published runs for a few test inputs, with the numbers the released scripts give for them.
CASES = json.loads((Path(__file__).parent / "official_metrics_cases.json").read_text(encoding="utf-8"))["cases"]
JAVA_METRICS = {"METEOR", "ROUGE-L", "CIDEr"}


def _case(task):
    from spdf_lib import data

    case = CASES[task]
    return case, data.load_task(task, "test").select(case["indices"])


def _check_case(task, wanted):
    case, rows = _case(task)
    entry = metrics.score_entry(task, case["outputs"], rows, metrics=wanted)
    if "segments" in case:
        assert entry["segments"] == case["segments"]
    for metric, value in entry["scores"].items():
        # multi-bleu-detok.perl prints BLEU with two decimals; everything else is compared unrounded
        tolerance = 0.005 if (task != "e2e" and metric == "BLEU") else 1e-9
        assert value == pytest.approx(case["expected"][metric], abs=tolerance), metric


@needs_data
@pytest.mark.parametrize("task", ["e2e", "webnlg", "dart"])
def test_the_released_scripts_numbers_are_reproduced_without_java(task):
    _check_case(task, [m for m in scoring.SUITES[task][1] if m not in JAVA_METRICS])


@needs_data
@needs_java
@pytest.mark.parametrize("task", ["e2e", "webnlg", "dart"])
def test_the_released_scripts_numbers_are_reproduced_with_java(task):
    _check_case(task, [m for m in scoring.SUITES[task][1] if m in JAVA_METRICS])


# ------------------------------------------------------------------------ runs and tables

def _result(run_id, task="dart", test_inputs=3, **fields):
    base = dict(run_id=run_id, size="m", sparsity=0.0, pretrain_seed=0, task=task, seed=0, lr=1e-3,
                keep_masks=False, test_inputs=test_inputs, metric="BLEU", value=0.0)
    return {**base, **fields}


@needs_data
def test_score_eval_results_reads_outputs_and_checks_their_count(tmp_path, monkeypatch):
    from spdf_lib import data

    monkeypatch.setitem(scoring.SUITES, "dart", (lambda h, r, w: {"BLEU": 50.0, "METEOR": 0.5, "TER": 0.4},
                                                 suites.GENERATION_EVAL_METRICS))
    rows = data.load_task("dart", "test", limit=3)
    folder = tmp_path / "tables" / "p" / "runs" / "eval"
    write_outputs(folder / "r1.outputs.jsonl.gz", [refs[0] for refs in data.column(rows, "references")])
    results = [_result("r1"), _result("ppl", task="summarization")]
    frame = metrics.score_eval_results(results, tmp_path / "tables", "p", limit_inputs=3)
    assert list(frame["run_id"]) == ["r1"] and frame.loc[0, "BLEU"] == 50.0 and math.isnan(frame.loc[0, "NIST"])
    assert frame.loc[0, "segments"] == 3

    write_outputs(folder / "r2.outputs.jsonl.gz", ["x", "y"])
    with pytest.raises(OutputsMismatchError, match=r"r2\.outputs\.jsonl\.gz: 2 lines but 3 test inputs"):
        metrics.score_eval_results([_result("r2")], tmp_path / "tables", "p", limit_inputs=3)
    with pytest.raises(OutputsMismatchError, match="limit=4 has 4"):
        metrics.score_eval_results([_result("r1")], tmp_path / "tables", "p", limit_inputs=4)


def test_score_eval_results_names_a_missing_field(tmp_path):
    result = _result("r1")
    del result["pretrain_seed"]
    with pytest.raises(ValueError, match=r"'r1' lacks the field\(s\) \['pretrain_seed'\]"):
        metrics.score_eval_results([result], tmp_path, "p", limit_inputs=None)


def test_metric_tables_layout_and_cells():
    rows = []
    for sparsity, bleus in ((0.0, [60.0, 62.0, 64.0]), (0.5, [58.0])):
        for seed, bleu in enumerate(bleus):
            rows.append({**_result(f"e{sparsity}{seed}", task="e2e", sparsity=sparsity, seed=seed), "segments": 630,
                         "BLEU": bleu, "NIST": 8.0, "METEOR": 0.45, "ROUGE-L": 0.7, "CIDEr": 2.5})
            rows.append({**_result(f"d{sparsity}{seed}", sparsity=sparsity, seed=seed), "segments": 4159,
                         "BLEU": 40.0 + seed, "METEOR": 0.4, "TER": 0.5})
    rows.append({**_result("masked", task="e2e", keep_masks=True), "segments": 630, "BLEU": 0.0, "NIST": 0.0,
                 "METEOR": 0.0, "ROUGE-L": 0.0, "CIDEr": 0.0})
    scores = pd.DataFrame(rows, columns=[*reporting.RUN_FIELDS, "segments", *metrics.METRICS])
    tables = metrics.metric_tables(scores)
    assert list(tables) == ["m"]
    table = tables["m"]
    assert list(table.index) == [0.0, 0.5]
    assert list(table.columns) == [("e2e", m) for m in (*suites.E2E_METRICS, "n")] + \
        [("dart", m) for m in (*suites.GENERATION_EVAL_METRICS, "n")]
    assert table.loc[0.0, ("e2e", "BLEU")] == "62.00 ± 2.00"  # the masked run is left out
    assert table.loc[0.0, ("e2e", "n")] == 3
    assert table.loc[0.0, ("dart", "TER")] == "0.500 ± 0.000"
    assert table.loc[0.5, ("e2e", "BLEU")] == "58.00 ± n/a"
    assert "standard deviation" in table.attrs["caption"] and "dart 4159" in table.attrs["caption"]


def test_metric_tables_refuses_a_frame_without_the_metric_columns():
    with pytest.raises(ValueError, match="missing columns"):
        metrics.metric_tables(pd.DataFrame({"size": ["m"]}))


def test_the_official_against_sacrebleu_note_says_which_runs_and_that_a_range_is_not_an_interval():
    from spdf_lib import findings

    scores = pd.DataFrame([{"run_id": "a", "task": "dart", "BLEU": 40.0}, {"run_id": "b", "task": "dart", "BLEU": 42.0},
                           {"run_id": "c", "task": "dart", "BLEU": 41.0}])
    evals = [{"run_id": "a", "value": 38.0, "keep_masks": False}, {"run_id": "b", "value": 38.0, "keep_masks": False},
             {"run_id": "c", "value": 40.0, "keep_masks": True}]
    note = findings.official_vs_sacrebleu_note(scores, evals)
    assert "DART +2.33 (from +1.00 to +4.00 over 3 final runs: 2 fine-tuned dense, 1 with the masks kept)" in note
    assert "a range, not an interval" in note
    assert findings.official_vs_sacrebleu_note(scores.iloc[:0], evals).startswith("No decoded outputs")
