#!/usr/bin/env python3
"""Writes a container image as a docker-archive tar, offline and reproducibly.

    oci_image.py --out IMAGE.tar --name NAME:TAG [--deb PKG.deb] [--file SRC=DEST[:MODE]]...
                 [--symlink DEST=TARGET]... [--entrypoint JSON] [--cmd JSON] [--env K=V]...
                 [--static DEST]... [--label K=V]...

One layer holds the files of the .deb (its data.tar, exactly what dpkg would
unpack), the --file entries, and the shared libraries every dynamically linked
ELF file among them needs (resolved with ldd on this machine, copied at the
paths ldd names; --static DEST asserts that DEST needs none). The archive is
what `docker save` writes (manifest.json, the config blob, the layer), which
`ctr images import` and `podman load` both accept, and which names the image
(RepoTags) so the import tags it.

Reproducible: entries sorted by path, owner 0:0 with no names, mtime
SOURCE_DATE_EPOCH (a fixed date when unset), gzip with mtime 0, JSON with
sorted keys. The same inputs give the same bytes, hence the same digests.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import tempfile

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "1795651200"))  # 2026-11-26, as build_deb.sh


def die(msg):
    print(f"oci_image.py: {msg}", file=sys.stderr)
    sys.exit(1)


def read_deb_data(path):
    """The data.tar member of a .deb (an ar archive), as an open TarFile."""
    with open(path, "rb") as f:
        blob = f.read()
    if not blob.startswith(b"!<arch>\n"):
        die(f"{path} is not a .deb (no ar magic)")
    pos = 8
    while pos + 60 <= len(blob):
        header = blob[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        data = blob[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
        pos += 60 + size + (size & 1)
    die(f"{path} has no data.tar member")


class Layer:
    """The image's one layer: path -> (TarInfo, bytes or None)."""

    def __init__(self):
        self.entries = {}

    def _parents(self, path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.entries:
                self.add_dir(d, 0o755)

    def _info(self, path, kind, mode):
        ti = tarfile.TarInfo(path)
        ti.type = kind
        ti.mode = mode
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mtime = EPOCH
        return ti

    def add_dir(self, path, mode):
        path = path.strip("/")
        if not path:
            return
        self._parents(path)
        self.entries[path] = (self._info(path, tarfile.DIRTYPE, mode), None)

    def add_file(self, path, data, mode):
        path = path.strip("/")
        if path in self.entries and self.entries[path][0].type == tarfile.DIRTYPE:
            die(f"{path} is a directory in the image")
        self._parents(path)
        ti = self._info(path, tarfile.REGTYPE, mode)
        ti.size = len(data)
        self.entries[path] = (ti, data)

    def add_symlink(self, path, target):
        path = path.strip("/")
        self._parents(path)
        ti = self._info(path, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.entries[path] = (ti, None)

    def tar(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
            for path in sorted(self.entries):
                ti, data = self.entries[path]
                t.addfile(ti, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()


def is_elf(data):
    return data[:4] == b"\x7fELF"


def needed_libs(data, label):
    """Absolute paths of the shared objects an ELF file loads (ldd), [] if static."""
    with tempfile.NamedTemporaryFile(prefix="oci-image-elf.") as f:
        f.write(data)
        f.flush()
        os.chmod(f.name, 0o755)
        res = subprocess.run(["ldd", f.name], capture_output=True, text=True)
    out = res.stdout + res.stderr
    if "not a dynamic executable" in out or "statically linked" in out:
        return []
    if res.returncode != 0:
        die(f"ldd {label} failed: {out.strip()}")
    libs = []
    for line in out.splitlines():
        line = line.strip()
        if "not found" in line:
            die(f"{label} needs a library this machine lacks: {line}")
        m = re.match(r"\S+ => (/\S+) \(", line) or re.match(r"(/\S+) \(", line)
        if m:
            libs.append(m.group(1))
    return libs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", required=True, help="NAME:TAG the import tags the image with")
    ap.add_argument("--deb", action="append", default=[])
    ap.add_argument("--file", action="append", default=[], help="SRC=DEST[:MODE] (octal mode, default 0755)")
    ap.add_argument("--symlink", action="append", default=[], help="DEST=TARGET")
    ap.add_argument("--dir", action="append", default=[], help="DEST[:MODE] an empty directory")
    ap.add_argument("--static", action="append", default=[], help="DEST must need no shared library")
    ap.add_argument("--entrypoint", default="null")
    ap.add_argument("--cmd", default="null")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--label", action="append", default=[])
    a = ap.parse_args()

    if not re.fullmatch(r"[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", a.name):
        die(f"--name {a.name!r} is not NAME:TAG")
    layer = Layer()

    for deb in a.deb:
        with read_deb_data(deb) as t:
            for m in t.getmembers():
                path = os.path.normpath(m.name).lstrip("./")
                if not path or path == ".":
                    continue
                if m.isdir():
                    layer.add_dir(path, m.mode & 0o7777)
                elif m.isfile():
                    layer.add_file(path, t.extractfile(m).read(), m.mode & 0o7777)
                elif m.issym():
                    layer.add_symlink(path, m.linkname)
                else:
                    die(f"{deb}: {m.name} is neither file, directory nor symlink")
    for spec in a.file:
        src, _, dest = spec.partition("=")
        dest, _, mode = dest.partition(":")
        if not src or not dest.startswith("/"):
            die(f"--file {spec!r} is not SRC=/DEST[:MODE]")
        with open(src, "rb") as f:
            layer.add_file(dest, f.read(), int(mode or "755", 8))
    for spec in a.dir:
        dest, _, mode = spec.partition(":")
        layer.add_dir(dest, int(mode or "755", 8))
    for spec in a.symlink:
        dest, _, target = spec.partition("=")
        if not dest.startswith("/") or not target:
            die(f"--symlink {spec!r} is not /DEST=TARGET")
        layer.add_symlink(dest, target)

    # The libraries of every dynamically linked executable or library in the
    # layer, transitively (ldd already lists indirect ones).
    wanted = {}
    for path, (ti, data) in sorted(layer.entries.items()):
        if data is None or not is_elf(data):
            continue
        libs = needed_libs(data, "/" + path)
        if "/" + path in a.static and libs:
            die(f"/{path} should be static but needs {', '.join(libs)}")
        for lib in libs:
            wanted.setdefault(lib, "/" + path)
    for dest in a.static:
        if dest.strip("/") not in layer.entries:
            die(f"--static {dest}: no such file in the image")
    for lib in sorted(wanted):
        if lib.strip("/") in layer.entries:
            continue
        with open(os.path.realpath(lib), "rb") as f:
            layer.add_file(lib, f.read(), 0o755)

    layer_tar = layer.tar()
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", compresslevel=9, mtime=0) as g:
        g.write(layer_tar)
    layer_gz = gz.getvalue()
    layer_digest = hashlib.sha256(layer_gz).hexdigest()

    created = __import__("datetime").datetime.fromtimestamp(EPOCH, __import__("datetime").timezone.utc)
    created = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {
            "Env": a.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": json.loads(a.entrypoint),
            "Cmd": json.loads(a.cmd),
            "Labels": dict(kv.split("=", 1) for kv in a.label) or None,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "packaging/oci_image.py"}],
    }
    config_json = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = hashlib.sha256(config_json).hexdigest()
    name, tag = a.name.rsplit(":", 1)
    manifest_json = json.dumps([{
        "Config": f"blobs/sha256/{config_digest}",
        "RepoTags": [f"{name}:{tag}"],
        "Layers": [f"blobs/sha256/{layer_digest}"],
    }], sort_keys=True, separators=(",", ":")).encode()

    out = Layer()
    out.add_file(f"blobs/sha256/{config_digest}", config_json, 0o644)
    out.add_file(f"blobs/sha256/{layer_digest}", layer_gz, 0o644)
    out.add_file("manifest.json", manifest_json, 0o644)
    with open(a.out, "wb") as f:
        f.write(out.tar())
    print(f"oci_image.py: {a.name} config sha256:{config_digest} ({len(layer.entries)} entries, "
          f"{len(layer_gz)} bytes compressed)", file=sys.stderr)


if __name__ == "__main__":
    main()
