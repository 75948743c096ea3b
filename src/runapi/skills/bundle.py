"""A generated skill held in memory, and its archives (runapi-contract §11.1, §11.5).

Files are kept in the plugin-repository layout of §11.1 (`.claude-plugin/plugin.json`, ...,
`skills/<name>/SKILL.md`). Two archive layouts are served from it:

- `skill`: the contents of `skills/<name>/`, `SKILL.md` at the archive root. This is what the
  discovery index points at and what `runapi skills install` unpacks.
- `plugin`: the whole repository under a `<name>/` folder, ready to publish.

Archives are deterministic (sorted entries, fixed times, owners and modes), so the same catalog and
version always give the same bytes and the same sha256 digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Literal

Layout = Literal["skill", "plugin"]
ArchiveFormat = Literal["tar.gz", "zip"]

# 2020-01-01T00:00:00Z: a fixed time for every entry (zip cannot go below 1980).
_FIXED_EPOCH = 1_577_836_800
_FIXED_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_MAX_ARCHIVE_BYTES = 16 * 1024 * 1024
_MAX_ENTRIES = 1000


def safe_relpath(path: str) -> str:
    """A relative POSIX path with no `..`, no absolute root, no empty or `.` parts."""
    if not path or path.startswith("/") or "\\" in path:
        raise ValueError(f"unsafe archive path: {path!r}")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"unsafe archive path: {path!r}")
    return path


class SkillBundle:
    """One skill: its metadata and files. Archives are built on first use and then reused."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        description: str,
        summary: str,
        family: str,
        models: tuple[str, ...],
        files: Mapping[str, bytes],
    ) -> None:
        self.name = name
        self.version = version
        self.description = description
        self.summary = summary
        self.family = family
        self.models = models
        self.files: dict[str, bytes] = {safe_relpath(p): files[p] for p in sorted(files)}
        if self.skill_dir + "SKILL.md" not in self.files:
            raise ValueError(f"bundle {name!r} has no {self.skill_dir}SKILL.md")
        prefix = self.skill_dir
        self._skill_files = {p.removeprefix(prefix): d for p, d in self.files.items() if p.startswith(prefix)}
        self._archives: dict[tuple[Layout, ArchiveFormat], bytes] = {}
        self._digests: dict[tuple[Layout, ArchiveFormat], str] = {}

    @property
    def skill_dir(self) -> str:
        return f"skills/{self.name}/"

    @property
    def skill_files(self) -> dict[str, bytes]:
        """The skill folder alone, paths relative to it (`SKILL.md`, `references/schema.json`)."""
        return self._skill_files

    @property
    def skill_md(self) -> str:
        return self.files[self.skill_dir + "SKILL.md"].decode("utf-8")

    def layout_files(self, layout: Layout) -> dict[str, bytes]:
        if layout == "skill":
            return self.skill_files
        return {f"{self.name}/{p}": data for p, data in self.files.items()}

    def archive(self, layout: Layout = "skill", fmt: ArchiveFormat = "tar.gz") -> bytes:
        key = (layout, fmt)
        if key not in self._archives:
            files = self.layout_files(layout)
            self._archives[key] = _tar_gz(files) if fmt == "tar.gz" else _zip(files)
        return self._archives[key]

    def digest(self, layout: Layout = "skill", fmt: ArchiveFormat = "tar.gz") -> str:
        """sha256 hex of one archive, computed once."""
        key = (layout, fmt)
        if key not in self._digests:
            self._digests[key] = hashlib.sha256(self.archive(layout, fmt)).hexdigest()
        return self._digests[key]

    def to_tar_gz(self, layout: Layout = "skill") -> bytes:
        return self.archive(layout, "tar.gz")

    def to_zip(self, layout: Layout = "skill") -> bytes:
        return self.archive(layout, "zip")

    @property
    def sha256(self) -> str:
        """Hex digest of the `skill`-layout tar.gz: the one the discovery index lists."""
        return self.digest("skill", "tar.gz")

    def write_to(self, directory: str | Path, layout: Layout = "skill") -> list[Path]:
        """Write the files under `directory` (for `skill`: the skill folder itself)."""
        return write_files(Path(directory), self.layout_files(layout))


def write_files(directory: Path, files: Mapping[str, bytes]) -> list[Path]:
    written = []
    for rel, data in sorted(files.items()):
        target = directory.joinpath(*PurePosixPath(safe_relpath(rel)).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if _executable(rel):
            target.chmod(0o755)
        written.append(target)
    return written


def _executable(rel: str) -> bool:
    return "/scripts/" in f"/{rel}" and rel.endswith(".py")


def _directories(paths: list[str]) -> list[str]:
    dirs: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return sorted(dirs)


def _tar_gz(files: Mapping[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = [(d, None) for d in _directories(list(files))] + sorted(files.items())
        for path, data in sorted(entries, key=lambda e: e[0]):
            info = tarfile.TarInfo(path)
            info.mtime = _FIXED_EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o755 if _executable(path) else 0o644
                tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    # gzip stores a time and a file name in its header: pin both.
    with gzip.GzipFile(fileobj=out, mode="wb", filename="", mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _zip(files: Mapping[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in sorted(files.items()):
            info = zipfile.ZipInfo(path, date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the mode bits below are honoured
            info.external_attr = ((0o755 if _executable(path) else 0o644) | 0o100000) << 16
            archive.writestr(info, data)
    return out.getvalue()


def read_archive(data: bytes) -> dict[str, bytes]:
    """Unpack a tar.gz or zip into memory, refusing links, devices, `..` and oversized input."""
    if data[:2] == b"\x1f\x8b":
        return _read_tar_gz(data)
    if data[:4] == b"PK\x03\x04":
        return _read_zip(data)
    raise ValueError("not a tar.gz or zip archive")


def _read_tar_gz(data: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for count, member in enumerate(tar):
            if count >= _MAX_ENTRIES:
                raise ValueError("archive has too many entries")
            name = member.name.removeprefix("./").rstrip("/")
            if member.isdir() or not name:
                continue
            if not member.isfile():
                raise ValueError(f"archive entry {member.name!r} is not a regular file")
            total += member.size
            if total > _MAX_ARCHIVE_BYTES:
                raise ValueError("archive is too large")
            extracted = tar.extractfile(member)
            if extracted is None:
                raise ValueError(f"cannot read archive entry {member.name!r}")
            files[safe_relpath(name)] = extracted.read()
    return files


def _read_zip(data: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        if len(infos) > _MAX_ENTRIES or sum(i.file_size for i in infos) > _MAX_ARCHIVE_BYTES:
            raise ValueError("archive is too large")
        for info in infos:
            if info.is_dir():
                continue
            files[safe_relpath(info.filename)] = archive.read(info)
    return files
