"""README.zh-CN.md keeps up with README.md: every setting, the two commands, the error statuses."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _settings(readme: str) -> list[str]:
    return re.findall(r"^\| `(IMMICH_CN_ML_\w+)`", readme, flags=re.MULTILINE)


def test_the_chinese_readme_lists_every_setting_of_the_english_one():
    english = _settings((ROOT / "README.md").read_text(encoding="utf-8"))
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    assert english, "README.md's settings table was not found"
    assert [name for name in english if f"`{name}`" not in chinese] == []


def test_the_chinese_readme_has_the_commands_and_the_error_statuses():
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    for needed in ("make serve", "make test", "501", "502", "503", "504"):
        assert needed in chinese, needed
