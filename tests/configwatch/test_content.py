"""The content digest of watched paths, over real files: what changes it and what
does not, and which directories a watch must follow."""

from __future__ import annotations

import os
from pathlib import Path

from pillion.watch import ContentHasher
from tests.configwatch.volumes import ConfigMapVolume


def digest(*paths: Path) -> str:
    return ContentHasher().snapshot([str(p) for p in paths]).digest


def test_a_configmap_swap_changes_the_digest_once_identical_content_does_not(
    tmp_path: Path,
) -> None:
    volume = ConfigMapVolume(tmp_path / "vol", {"app.conf": "a=1\n", "b.conf": "b\n"})
    hasher = ContentHasher()
    first = hasher.snapshot([str(volume.path)])
    assert first.files == 2
    volume.update({"app.conf": "a=1\n", "b.conf": "b\n"})  # a new directory, same content
    assert hasher.snapshot([str(volume.path)]).digest == first.digest
    volume.update({"app.conf": "a=2\n", "b.conf": "b\n"})
    second = hasher.snapshot([str(volume.path)])
    assert second.digest != first.digest
    assert hasher.snapshot([str(volume.path)]).digest == second.digest


def test_touching_changes_nothing_renaming_does(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("x\n")
    before = digest(tmp_path)
    os.utime(tmp_path / "a.conf", (1, 1))
    (tmp_path / "a.conf").chmod(0o600)
    assert digest(tmp_path) == before
    (tmp_path / "a.conf").rename(tmp_path / "b.conf")
    assert digest(tmp_path) != before


def test_hidden_entries_are_skipped_nested_directories_are_not(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("x\n")
    before = digest(tmp_path)
    (tmp_path / ".swp").write_text("editor state\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.conf").write_text("y\n")
    assert digest(tmp_path) == before
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "site.conf").write_text("z\n")
    assert digest(tmp_path) != before


def test_a_missing_path_is_empty_until_it_appears(tmp_path: Path) -> None:
    missing = tmp_path / "extra.conf"
    snapshot = ContentHasher().snapshot([str(missing)])
    assert snapshot.missing == (str(missing),)
    assert snapshot.files == 0
    assert str(tmp_path) in snapshot.directories  # where it would appear
    missing.write_text("")
    appeared = ContentHasher().snapshot([str(missing)])
    assert appeared.missing == ()
    assert appeared.digest != snapshot.digest  # an empty file is not no file


def test_the_same_content_under_another_name_differs(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_text("same\n")
    (tmp_path / "b" / "x").write_text("same\n")
    assert digest(tmp_path / "a") != digest(tmp_path / "b")
    assert digest(tmp_path / "a", tmp_path / "b") == digest(tmp_path / "b", tmp_path / "a")


def test_an_edit_in_place_is_seen_through_the_cache(tmp_path: Path) -> None:
    """Same size, written twice in a row: the stat may not change, the digest must."""
    hasher = ContentHasher()
    target = tmp_path / "a.conf"
    target.write_text("aaaa\n")
    before = hasher.snapshot([str(tmp_path)]).digest
    target.write_text("bbbb\n")
    assert hasher.snapshot([str(tmp_path)]).digest != before


def test_directories_to_watch_include_the_keys_real_directory(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "vol", {"app.conf": "a\n"})
    snapshot = ContentHasher().snapshot([str(volume.path)])
    real = (volume.path / "..data").resolve()
    assert snapshot.directories == {str(tmp_path), str(volume.path), str(real)}


def test_symlink_loops_and_special_files_are_harmless(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("x\n")
    (tmp_path / "loop").symlink_to(tmp_path)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    snapshot = ContentHasher().snapshot([str(tmp_path)])
    assert snapshot.files == 1
    assert snapshot.unreadable == ()
