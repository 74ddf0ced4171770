"""The token file as the API reads it again: a revocation always takes effect, whatever else
the new file gets wrong; only a file that can't be read at all (mid-swap) keeps the last one."""

import time
from pathlib import Path

import pytest

from services.api import auth


def _table(path: Path, monkeypatch: pytest.MonkeyPatch) -> auth.TokenTable:
    monkeypatch.setattr(auth, "RELOAD_CHECK_SECONDS", 0.0)
    return auth.TokenTable(path)


def _write(path: Path, text: str | bytes) -> None:
    time.sleep(0.01)  # a new mtime, as a real edit has
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def test_a_revocation_takes_effect_even_when_another_line_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaked, leaked_line = auth.new_token("leaked", "operate")
    kept, kept_line = auth.new_token("kept", "read")
    path = tmp_path / "tokens"
    path.write_text(f"{leaked_line}\n{kept_line}\n")
    table = _table(path, monkeypatch)
    assert table.identify(leaked) is not None
    # The leaked token removed, and a typo on a new line: the good lines apply.
    _write(path, f"{kept_line}\nnew-bot operate sha256:oops\n")
    assert table.identify(leaked) is None
    assert table.identify(kept) == auth.Identity("kept", auth.Role.READ)


@pytest.mark.parametrize(
    "content",
    [b"# every token removed\n", b"garbage\n", "x".encode("utf-16")],
    ids=["comments-only", "garbage", "utf-16"],
)
def test_a_file_without_a_usable_token_lets_nobody_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    token, line = auth.new_token("ci-bot", "operate")
    path = tmp_path / "tokens"
    path.write_text(line + "\n")
    table = _table(path, monkeypatch)
    _write(path, content)
    assert table.identify(token) is None


def test_a_file_missing_mid_swap_keeps_the_last_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, line = auth.new_token("ci-bot", "operate")
    path = tmp_path / "tokens"
    path.write_text(line + "\n")
    table = _table(path, monkeypatch)
    path.unlink()
    assert table.identify(token) is not None


def test_a_bom_and_crlf_are_read_and_a_digest_twice_is_refused(tmp_path: Path) -> None:
    token, line = auth.new_token("ci-bot", "operate")
    path = tmp_path / "tokens"
    path.write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\r\n")
    assert auth.TokenTable(path).identify(token) == auth.Identity("ci-bot", auth.Role.OPERATE)
    twice = line.replace("ci-bot operate", "other read")
    path.write_text(f"{line}\n{twice}\n")
    with pytest.raises(auth.TokenFileError, match="line 2: this token is already on line 1"):
        auth.TokenTable(path)
