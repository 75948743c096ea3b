"""The front matter reader handles the YAML skills use and flags what YAML would not read as text."""

from __future__ import annotations

import pytest

from runapi.skills.frontmatter import FrontMatter, FrontMatterError, parse_front_matter, split_front_matter


def test_rendered_front_matter_reads_back() -> None:
    front = FrontMatter(
        name="minimax",
        description='Use when: colons, "quotes", # hashes and ünïcode',
        license="Apache-2.0",
        compatibility="Needs a key.",
        metadata={"version": "0.1.0", "count": "3"},
    )
    block, body = split_front_matter(front.render() + "\n# Body\n")
    assert body == "# Body\n"
    assert parse_front_matter(block) == {
        "name": "minimax",
        "description": 'Use when: colons, "quotes", # hashes and ünïcode',
        "license": "Apache-2.0",
        "compatibility": "Needs a key.",
        "metadata": {"version": "0.1.0", "count": "3"},
    }


def test_yaml_forms_other_skills_use() -> None:
    block = "\n".join(
        [
            "name: pdf",
            "description: >-",
            "  Extract text from PDFs.",
            "  Use when the user mentions PDFs.",
            "license: 'Apache 2.0 (it''s bundled)'",
            "allowed-tools: [Bash(git:*), Read]",
            "metadata:",
            "  author: someone  # a comment",
            "  version: 1.0",
            "  draft: true",
        ]
    )
    fields = parse_front_matter(block)
    assert fields["description"] == "Extract text from PDFs. Use when the user mentions PDFs."
    assert fields["license"] == "Apache 2.0 (it's bundled)"
    assert fields["allowed-tools"] == ["Bash(git:*)", "Read"]
    # YAML would read 1.0 and true as a number and a boolean: the checks must see that.
    assert fields["metadata"] == {"author": "someone", "version": 1.0, "draft": True}


def test_literal_block_keeps_newlines() -> None:
    assert parse_front_matter("description: |\n  one\n  two\n")["description"] == "one\ntwo\n"


@pytest.mark.parametrize(
    "block",
    ["name: a\nname: b", "metadata:\n  nested:\n    deeper: x", "  indented: x", "just text", 'name: "open'],
)
def test_unsupported_or_broken_front_matter_is_an_error(block: str) -> None:
    with pytest.raises(FrontMatterError):
        parse_front_matter(block)


def test_split_requires_fences() -> None:
    with pytest.raises(FrontMatterError, match="start"):
        split_front_matter("# no front matter")
    with pytest.raises(FrontMatterError, match="closed"):
        split_front_matter("---\nname: x\n")
