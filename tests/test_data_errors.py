"""Errors of the data loaders (spdf_lib.data.files, .readers, .tasks): a missing root, a missing file and a
malformed CSV, JSON Lines or XML file each raise an error that names the file (and the row) at fault."""

from __future__ import annotations

import json
import textwrap

import pytest

from spdf_lib import data


def test_missing_data_root_gives_a_clear_error(monkeypatch, tmp_path):
    missing = tmp_path / "no-such-dir"
    monkeypatch.setenv("SPDF_DATA", str(missing))
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_task("e2e", "train")
    message = str(info.value)
    assert str(missing) in message and "SPDF_DATA" in message
    assert "tuetschek/e2e_nlg" in message and "Yale-LILY/dart" in message  # how to get the data


def _fake_root(monkeypatch, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("SPDF_DATA", str(root))
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path / "cache"))
    return root


def test_missing_file_is_named(monkeypatch, tmp_path):
    _fake_root(monkeypatch, tmp_path)
    with pytest.raises(data.DataNotFoundError, match=r"e2e/trainset\.csv"):
        data.load_task("e2e", "train")


def test_malformed_csv_row_is_named(monkeypatch, tmp_path):
    root = _fake_root(monkeypatch, tmp_path)
    (root / "e2e").mkdir()
    (root / "e2e" / "trainset.csv").write_text('mr,ref\n"name[A]",Fine.\n"name[B]",too,many\n')
    with pytest.raises(ValueError, match=r"trainset\.csv.*data row 2"):
        data.load_task("e2e", "train")


def test_empty_csv_field_is_named(monkeypatch, tmp_path):
    root = _fake_root(monkeypatch, tmp_path)
    (root / "e2e").mkdir()
    (root / "e2e" / "devset.csv").write_text('mr,ref\n"name[A]",Fine.\n"name[B]",NA\n"name[C]",\n')
    with pytest.raises(ValueError, match=r"devset\.csv: data row 3: field 'ref'"):
        data.load_task("e2e", "validation")


def test_malformed_jsonl_line_is_named(monkeypatch, tmp_path):
    root = _fake_root(monkeypatch, tmp_path)
    folder = root / "summarization" / "bbc_news_summary"
    folder.mkdir(parents=True)
    good = {"category": "tech", "file": "001.txt", "article": "A\n\nB.", "summary": "B."}
    (folder / "valid.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n" + '{"category": "tech",\n')
    with pytest.raises(ValueError, match=r"valid\.jsonl.*line 3"):
        data.load_task("summarization", "validation")


def test_malformed_xml_entry_is_named(monkeypatch, tmp_path):
    root = _fake_root(monkeypatch, tmp_path)
    folder = root / "dart"
    folder.mkdir()
    (folder / "dart-v1.1.1-full-test.xml").write_text(textwrap.dedent("""\
        <benchmark><entries>
          <entry category="MISC" eid="Id1" size="1"><modifiedtripleset><mtriple>a | b | c</mtriple>
            </modifiedtripleset><lex comment="e2e" lid="Id1">A b c.</lex></entry>
          <entry category="MISC" eid="Id2" size="1"><modifiedtripleset><mtriple>a | b</mtriple>
            </modifiedtripleset><lex comment="e2e" lid="Id1">A b.</lex></entry>
        </entries></benchmark>"""))
    with pytest.raises(ValueError, match=r"full-test\.xml: entry 2 \(eid='Id2'\)"):
        data.load_task("dart", "test")
