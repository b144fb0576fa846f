"""The key reference in docs/config-keys.md is the one the config sections write."""

from __future__ import annotations

from pathlib import Path

from cwl_pipeline.config import StreamConfig
from cwl_pipeline.config_model import section_keys
from cwl_pipeline.config_reference import SECTIONS, reference

KEYS_DOC = Path(__file__).resolve().parents[1] / "docs" / "config-keys.md"


def test_the_reference_in_docs_is_the_one_the_code_writes() -> None:
    assert KEYS_DOC.read_text(encoding="utf-8") == reference(), "run `make docs-keys`"


def test_every_key_of_every_section_is_in_the_reference() -> None:
    text = reference()
    assert len(SECTIONS) == len({where for where, _ in SECTIONS})
    for where, section in SECTIONS:
        body = text.split(f"## `{where}`", 1)[1].split("\n## ", 1)[0]
        for key in section.document_keys():
            assert f"| `{key}` |" in body, (where, key)
    assert "parser" in StreamConfig.document_keys() - section_keys(StreamConfig)
