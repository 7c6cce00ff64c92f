"""The Debian mirror this machine's apt already uses, for `scripts/test`'s Debian 13 source (pebble only).

    python3 -m tools.debian_mirror [--root /]    # prints the mirror's URI, or exits 1 saying why there is none

A corporate mirror or proxy the machine is configured with then keeps working, instead of an address
typed into the script. apt reads `/etc/apt/sources.list` (one-line format) and then the `*.list`
(one-line) and `*.sources` (deb822) files of `/etc/apt/sources.list.d/` in name order (sources.list(5));
the first `deb` entry for this release's own suite (VERSION_CODENAME of os-release, without a suffix such
as `-security` or `-updates`) with the `main` component is the Debian mirror. Standard library only:
`scripts/test` runs it before the project's venv exists.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# The source scripts/test writes itself (Debian 13 for pebble): never the machine's own mirror.
OWN_SOURCE = "mlflow-aws-trixie.sources"


@dataclass(frozen=True)
class Source:
    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]


class NoMirror(LookupError):
    """No Debian mirror in the machine's apt sources; the message says why."""


def os_release(root: Path) -> dict[str, str]:
    for path in (root / "etc/os-release", root / "usr/lib/os-release"):
        if path.is_file():
            fields = {}
            for line in path.read_text(errors="replace").splitlines():
                key, sep, value = line.partition("=")
                if sep and not key.startswith("#"):
                    fields[key.strip()] = value.strip().strip("\"'")
            return fields
    return {}


def one_line_sources(text: str) -> Iterator[Source]:
    """`deb [options] uri suite [component...]` lines (sources.list(5), ONE-LINE-STYLE FORMAT)."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        kind, _, rest = line.partition(" ")
        if kind not in ("deb", "deb-src"):
            continue
        rest = rest.strip()
        if rest.startswith("["):
            closing = rest.find("]")
            if closing < 0:
                continue
            rest = rest[closing + 1:]
        words = rest.split()
        if len(words) >= 2:
            yield Source((kind,), (words[0],), (words[1],), tuple(words[2:]))


def deb822_sources(text: str) -> Iterator[Source]:
    """Stanzas of `Types:`, `URIs:`, `Suites:`, `Components:` (sources.list(5), DEB822-STYLE FORMAT)."""
    for stanza in _stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        yield Source(
            tuple(stanza.get("types", "").split()),
            tuple(stanza.get("uris", "").split()),
            tuple(stanza.get("suites", "").split()),
            tuple(stanza.get("components", "").split()),
        )


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    key = ""
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, ""
        elif raw[0] in " \t" and key:
            fields[key] += " " + raw.strip()
        else:
            name, sep, value = raw.partition(":")
            if sep:
                key = name.strip().lower()
                fields[key] = value.strip()


def machine_sources(root: Path) -> Iterator[tuple[Path, Source]]:
    """Every source apt reads, in apt's order, with the file it is in."""
    main_list = root / "etc/apt/sources.list"
    if main_list.is_file():
        for source in one_line_sources(main_list.read_text(errors="replace")):
            yield main_list, source
    directory = root / "etc/apt/sources.list.d"
    if not directory.is_dir():
        return
    for path in sorted(directory.iterdir()):
        if path.name == OWN_SOURCE or not path.is_file():
            continue
        if path.suffix == ".list":
            found = one_line_sources(path.read_text(errors="replace"))
        elif path.suffix == ".sources":
            found = deb822_sources(path.read_text(errors="replace"))
        else:
            continue  # apt ignores other names (sources.list(5)), e.g. *.list.disabled, *.save
        for source in found:
            yield path, source


def debian_mirror(root: Path = Path("/")) -> str:
    """The URI of the Debian mirror apt uses on this machine; NoMirror saying why when there is none."""
    release = os_release(root)
    if not release:
        raise NoMirror(f"no os-release file under {root}, so this machine's release is unknown")
    if release.get("ID") != "debian":
        raise NoMirror(f"this machine is {release.get('PRETTY_NAME') or release.get('ID') or 'not Debian'}, "
                       "whose apt sources name no Debian mirror")
    codename = release.get("VERSION_CODENAME", "")
    if not codename:
        raise NoMirror("os-release names no VERSION_CODENAME, so the release's own suite is unknown")
    for _, source in machine_sources(root):
        if "deb" in source.types and codename in source.suites and "main" in source.components:
            uris = [uri for uri in source.uris if not uri.startswith("cdrom:")]
            if uris:
                return uris[0].rstrip("/")
    raise NoMirror(f"no apt source has a deb entry for suite {codename} with component main "
                   f"(read {root / 'etc/apt/sources.list'} and {root / 'etc/apt/sources.list.d'}/*.list, *.sources)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the Debian mirror this machine's apt uses.")
    parser.add_argument("--root", type=Path, default=Path("/"), help="the file system root to read (default: /)")
    args = parser.parse_args(argv)
    try:
        print(debian_mirror(args.root))
    except NoMirror as reason:
        print(f"no Debian mirror found: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
