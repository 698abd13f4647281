"""Saved decoded outputs: one JSON string per test input, and a loader that refuses misaligned files."""

from __future__ import annotations

import gzip
import json

import pytest

from spdf_lib.outputs import OutputsMismatchError, read_outputs, write_outputs


def test_an_output_with_a_line_break_round_trips_as_one_line(tmp_path):
    hyps = ["first output", "two\nlines", "carriage\r\nreturn", "line\u2028separator", "", "  padded  ",
            'quotes " and \\ backslash', "caf\u00e9 \u2013 \u00a3"]
    path = tmp_path / "run.outputs.jsonl.gz"
    write_outputs(path, hyps)
    raw = gzip.decompress(path.read_bytes()).decode("utf-8")
    assert raw.count("\n") == len(hyps)
    assert raw.splitlines() == raw.split("\n")[:-1]  # no character that some readers take for a line end
    assert [json.loads(line) for line in raw.split("\n")[:-1]] == hyps
    assert read_outputs(path, expected=len(hyps)) == hyps


def test_same_outputs_give_the_same_bytes(tmp_path):
    write_outputs(tmp_path / "a.jsonl.gz", ["x", "y"])
    write_outputs(tmp_path / "b.jsonl.gz", ["x", "y"])
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()


def test_empty_output_list_round_trips(tmp_path):
    path = tmp_path / "none.jsonl.gz"
    write_outputs(path, [])
    assert read_outputs(path, expected=0) == []


def test_a_count_mismatch_names_the_file_and_both_counts(tmp_path):
    path = tmp_path / "dart_run.outputs.jsonl.gz"
    write_outputs(path, ["a", "b", "c"])
    with pytest.raises(OutputsMismatchError) as err:
        read_outputs(path, expected=5)
    message = str(err.value)
    assert str(path) in message and "3 lines" in message and "5 test inputs" in message
    assert isinstance(err.value, ValueError)


def test_newline_joined_text_with_a_line_break_is_refused(tmp_path):
    # The old format: outputs joined by newlines. An output with a line break adds a line.
    path = tmp_path / "old.outputs.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(["a", "b\nc"]) + "\n").encode()))
    with pytest.raises(OutputsMismatchError, match="3 lines but 2 test inputs"):
        read_outputs(path, expected=2)


@pytest.mark.parametrize("line, what", [("plain text", "not JSON"), ("42", "JSON int"), ('["a"]', "JSON list")])
def test_a_line_that_is_not_a_json_string_is_named(tmp_path, line, what):
    path = tmp_path / "bad.outputs.jsonl.gz"
    path.write_bytes(gzip.compress(f'"fine"\n{line}\n'.encode()))
    with pytest.raises(OutputsMismatchError, match=f"line 2 .*{what}"):
        read_outputs(path, expected=2)


def test_a_file_that_is_not_gzip_is_refused(tmp_path):
    path = tmp_path / "plain.outputs.jsonl.gz"
    path.write_text('"a"\n')
    with pytest.raises(OutputsMismatchError, match="not a readable gzip"):
        read_outputs(path, expected=1)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.jsonl.gz"):
        read_outputs(tmp_path / "nothing.jsonl.gz", expected=1)


def test_writing_a_non_string_is_refused(tmp_path):
    with pytest.raises(TypeError, match="output 2 is a int"):
        write_outputs(tmp_path / "x.jsonl.gz", ["a", 3])
    assert not (tmp_path / "x.jsonl.gz").exists()
