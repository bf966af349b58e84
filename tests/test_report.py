"""keras_notes.report: tables and atomic figure writes."""

import os

import pytest

from keras_notes import report


def test_table_right_aligns_numbers_and_separates_thousands():
    text = report.format_table(["name", "params"], [("dense", 2402), ("conv", 56)])
    assert text.splitlines() == [
        "name   params",
        "-----  ------",
        "dense   2,402",
        "conv       56",
    ]


def test_table_refuses_an_align_string_of_the_wrong_length():
    with pytest.raises(ValueError, match="align='l'"):
        report.format_table(["a", "b"], [(1, 2)], align="l")


def test_save_figure_writes_a_png_and_leaves_no_temporary_file(tmp_path):
    figure, axis = report.new_figure()
    axis.plot([0, 1], [1, 0])
    path = report.save_figure(figure, tmp_path / "plots" / "line.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path / "plots") == ["line.png"]


def test_a_failed_save_keeps_the_old_figure_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "line.png"
    target.write_bytes(b"old")
    figure, _ = report.new_figure()

    def broken_savefig(name, **kwargs):
        with open(name, "wb") as handle:
            handle.write(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr(figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        report.save_figure(figure, target)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["line.png"]
