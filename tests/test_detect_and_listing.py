from __future__ import annotations

import shutil

import pytest
from conftest import corpus
from unitok.connectors.local import LocalStore, SourceNotFound
from unitok.connectors.objects import key_selected
from unitok.pipeline.formats.detect import extension_warning, sniff_file


@pytest.mark.parametrize(
    ("rel", "mime"),
    [
        ("pdf/fake-memo.pdf", "application/pdf"),
        ("image/DA-1p.png", "image/png"),
        ("image/example.jpg", "image/jpeg"),
        ("image/layout-parser-paper-fast.tiff", "image/tiff"),
        ("image/bmp_24.bmp", "image/bmp"),
        ("image/DA-1p.heic", "image/heic"),
        (
            "pptx/fake-power-point.pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
        ("ppt/fake-power-point.ppt", "application/vnd.ms-powerpoint"),
        ("audio/CantinaBand3.wav", "audio/wav"),
    ],
)
def test_type_comes_from_content(rel, mime):
    assert sniff_file(corpus(rel)).mime_type == mime


def test_renamed_file_is_detected_by_content(tmp_path):
    fake = tmp_path / "scan.pdf"
    shutil.copy(corpus("image/DA-1p.png"), fake)
    ft = sniff_file(fake)
    assert ft.mime_type == "image/png"
    assert "extension .pdf but content is image/png" in extension_warning(ft, fake.name)


def test_text_named_pptx_and_empty_file(tmp_path):
    (tmp_path / "deck.pptx").write_text("not a deck at all\n")
    (tmp_path / "empty.pdf").write_bytes(b"")
    assert sniff_file(tmp_path / "deck.pptx").mime_type == "text/plain"
    assert sniff_file(tmp_path / "empty.pdf").mime_type == "application/x-empty"


@pytest.mark.parametrize(
    ("key", "include", "exclude", "expected"),
    [
        ("a/b/c.PDF", ["*.pdf"], [], True),
        ("a/b/c.pdf", ["a/*.pdf"], [], False),
        ("a/b/c.pdf", ["a/**/*.pdf"], [], True),
        ("a/c.pdf", ["a/**/*.pdf"], [], True),
        ("a/b/c.pdf", ["**"], ["b/**"], True),  # a pattern with '/' is anchored at the root
        ("a/b/c.pdf", ["**"], ["a/b/**"], False),
        ("a/b/c.pdf", ["**"], ["c.pdf"], False),
        ("x.png", ["*.pdf", "*.png"], [], True),
    ],
)
def test_globs(key, include, exclude, expected):
    assert key_selected(key, include, exclude) is expected


def test_listing_records_size_and_mtime_and_skips_hidden(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.pdf").write_bytes(b"%PDF-1.4\n")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    (tmp_path / "b.txt").write_text("hello")
    objs = list(LocalStore(str(tmp_path)).list_objects(["**"], ["*.txt"]))
    assert [o.key for o in objs] == ["sub/a.pdf"]
    assert objs[0].size == 9 and objs[0].modified_at > 0
    assert objs[0].uri == (tmp_path / "sub" / "a.pdf").as_uri()
    with pytest.raises(SourceNotFound):
        LocalStore(str(tmp_path / "nope"))
