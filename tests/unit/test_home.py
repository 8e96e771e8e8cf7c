"""The home's private places: what the checks decide from owner and mode bits."""

import os

import pytest

from wasm_sandbox.errors import HomeError
from wasm_sandbox.home import private_dir, read_private, replace_file, write_new


def test_private_dir_creates_0700_and_returns_the_real_path(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real").mkdir(mode=0o755)
    assert private_dir(tmp_path / "link", "home") == tmp_path / "real"
    made = private_dir(tmp_path / "new" / "keys", "key directory", forbidden=0o077)
    assert made.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("mode", "forbidden", "fix"), [(0o775, 0o022, "755"), (0o750, 0o077, "700")]
)
def test_private_dir_names_the_chmod_that_fixes_it(tmp_path, mode, forbidden, fix):
    path = tmp_path / "d"
    path.mkdir()
    os.chmod(path, mode)
    with pytest.raises(HomeError, match=f"has mode {mode:04o}; run chmod {fix} "):
        private_dir(path, "home", forbidden=forbidden)


def test_read_private_refuses_a_link_even_to_a_good_file(tmp_path):
    good = tmp_path / "good"
    good.write_bytes(b"k")
    os.chmod(good, 0o600)
    assert read_private(good, "key file") == b"k"
    (tmp_path / "link").symlink_to(good)
    with pytest.raises(HomeError, match="cannot open it"):
        read_private(tmp_path / "link", "key file")


def test_write_new_never_overwrites_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "key"
    assert write_new(path, b"first") is True
    assert write_new(path, b"second") is False
    assert path.read_bytes() == b"first" and os.listdir(tmp_path) == ["key"]


def test_replace_file_removes_its_temp_file_when_the_rename_fails(tmp_path):
    (tmp_path / "entry").mkdir()  # a directory cannot be replaced by a file
    with pytest.raises(IsADirectoryError):
        replace_file(tmp_path / "entry", b"data")
    assert os.listdir(tmp_path) == ["entry"]
