"""Model skills: per-family bundles of docs, a typed request schema and setup notes (§11).

Floor 2: built from the catalog and the request schemas the app passes in (the surfaces own the
wire types), never by importing surfaces or the app.
"""

from runapi.skills.bundle import SkillBundle, read_archive
from runapi.skills.examples import Example, extract_examples
from runapi.skills.generator import build_skill
from runapi.skills.index import discovery_index, llms_txt, skill_listing
from runapi.skills.schema import endpoint_schema, request_def, response_def
from runapi.skills.skill_catalog import SkillCatalog
from runapi.skills.verify import verify_skill_dir

__all__ = [
    "Example",
    "SkillBundle",
    "SkillCatalog",
    "build_skill",
    "discovery_index",
    "endpoint_schema",
    "extract_examples",
    "llms_txt",
    "read_archive",
    "request_def",
    "response_def",
    "skill_listing",
    "verify_skill_dir",
]
