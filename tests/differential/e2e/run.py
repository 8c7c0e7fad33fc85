#!/usr/bin/env python3
"""Differential e2e runner: kiln vs. cases recorded with the real BuildKit v0.24.0.

Every case directory NNN-name/ next to this script is built with a builder preset;
the OCI tarball it writes is summarised (rootfs tree, config, history, layer count,
optionally mtimes and the manifest digest) and compared with the recorded expected-*
files. Cache cases also rebuild after editing the context and compare which
Dockerfile steps were CACHED. See README.md for the case format.

Usage:
  run.py                               # kiln (KILN_BIN or kiln on PATH)
  run.py --preset buildctl             # the reference (KILN_BUILDCTL or buildctl on PATH)
  run.py --record --preset buildctl [CASES...]   # (re)write expected-*
  run.py [--keep DIR] [-v] [CASES...]  # CASES: names, prefixes or globs

Output: `PASS name` / `FAIL name: first difference` per case, then
`differential-e2e: N passed, M failed`; exit 1 if anything failed.
"""
import argparse
import difflib
import fnmatch
import glob
import gzip
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ADDR = "unix:///run/buildkit/buildkitd.sock"
REGISTRY = "127.0.0.1:5000"
# the base images every case was recorded against (manifest digests)
BASES = {
    "busybox:latest": "sha256:f4336c1aef5115aa5410911eac81b8396240297d8ddbdb90202a0e7dfa5333f7",
}

EXCLUDE_ALWAYS = ("/proc", "/sys", "/dev")
# BuildKit v0.24.0 writes EXPOSE/HEALTHCHECK history as Go struct dumps that contain a
# heap pointer; such pointers are masked.
GO_POINTER = re.compile(r"\b0x[0-9a-f]{8,}\b")
# a Dockerfile step as BuildKit names its vertex: "[stage-1 2/4] COPY app/ /app/"
STEP_NAME = re.compile(r"^\[(?:[^\]\s]+ )?\d+/\d+\] ")


# ----------------------------------------------------------------- OCI reading
def _blob(layout, digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexd)


def _read_json(layout, digest):
    with open(_blob(layout, digest), "rb") as f:
        return json.load(f)


def find_manifest(layout):
    """index.json -> (manifest digest, manifest dict); follows nested indexes,
    prefers linux/amd64, skips attestation manifests."""
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    for _ in range(8):
        mans = idx.get("manifests") or []
        if not mans:
            raise RuntimeError("OCI index has no manifests")
        cands = [m for m in mans if (m.get("annotations") or {}).get(
            "vnd.docker.reference.type") != "attestation-manifest"] or mans
        pick = None
        for m in cands:
            p = m.get("platform") or {}
            if p.get("os") in (None, "linux") and p.get("architecture") in (None, "amd64"):
                pick = m
                break
        pick = pick or cands[0]
        doc = _read_json(layout, pick["digest"])
        mt = doc.get("mediaType") or pick.get("mediaType", "")
        if "index" in mt or "manifest.list" in mt or ("manifests" in doc and "layers" not in doc):
            idx = doc
            continue
        return pick["digest"], doc
    raise RuntimeError("OCI index nesting too deep")


def open_layer(path):
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if head == b"\x28\xb5\x2f\xfd":
        data = subprocess.run(["zstd", "-dc", path], check=True, stdout=subprocess.PIPE).stdout
        return io.BytesIO(data)
    return open(path, "rb")


class Node:
    __slots__ = ("typ", "mode", "uid", "gid", "size", "ref", "ino", "mtime")

    def __init__(self, typ, mode, uid, gid, size, ref, ino, mtime=None):
        self.typ, self.mode, self.uid, self.gid = typ, mode, uid, gid
        self.size, self.ref, self.ino, self.mtime = size, ref, ino, mtime


def _norm(name):
    name = name.replace("\\", "/")
    parts = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return "/" + "/".join(parts) if parts else "/"


def _parent(p):
    return p.rsplit("/", 1)[0] or "/"


def _remove_subtree(tree, path):
    tree.pop(path, None)
    pre = path + "/"
    for k in [k for k in tree if k.startswith(pre)]:
        del tree[k]


def apply_layers(layout, manifest, scan_for=()):
    """Returns (tree, found): tree maps abs path -> Node; found is the set of scan_for
    byte strings seen anywhere in any (uncompressed) layer."""
    tree = {}
    found = set()
    ino_counter = [0]

    for layer in manifest.get("layers", []):
        path = _blob(layout, layer["digest"])
        if scan_for:
            with open_layer(path) as f:
                raw = f.read()
            for s in scan_for:
                if s and s in raw:
                    found.add(s)
            fobj = io.BytesIO(raw)
        else:
            fobj = open_layer(path)
        with fobj:
            tf = tarfile.open(fileobj=fobj, mode="r|")
            entries, whiteouts, opaques = [], [], []
            for m in tf:
                p = _norm(m.name)
                base = p.rsplit("/", 1)[1]
                if base == ".wh..wh..opq":
                    opaques.append(_parent(p))
                    continue
                if base.startswith(".wh..wh."):
                    continue
                if base.startswith(".wh."):
                    whiteouts.append(_parent(p).rstrip("/") + "/" + base[4:])
                    continue
                if p == "/":
                    continue
                mt = int(m.mtime)
                if m.isreg():
                    h = hashlib.sha256()
                    fh = tf.extractfile(m)
                    n = 0
                    while True:
                        b = fh.read(1 << 20)
                        if not b:
                            break
                        n += len(b)
                        h.update(b)
                    entries.append((p, m, Node("f", m.mode & 0o7777, m.uid, m.gid, n, h.hexdigest(), None, mt)))
                elif m.islnk():
                    entries.append((p, m, None))
                elif m.isdir():
                    entries.append((p, m, Node("d", m.mode & 0o7777, m.uid, m.gid, None, None, None, mt)))
                elif m.issym():
                    entries.append((p, m, Node("l", m.mode & 0o7777, m.uid, m.gid, None, m.linkname, None, mt)))
                elif m.ischr() or m.isblk():
                    t = "c" if m.ischr() else "b"
                    entries.append((p, m, Node(t, m.mode & 0o7777, m.uid, m.gid, None,
                                               "%d:%d" % (m.devmajor, m.devminor), None, mt)))
                elif m.isfifo():
                    entries.append((p, m, Node("p", m.mode & 0o7777, m.uid, m.gid, None, None, None, mt)))
            # whiteouts / opaque markers refer to lower layers only
            for w in whiteouts:
                _remove_subtree(tree, _norm(w))
            for o in opaques:
                pre = (o.rstrip("/") + "/") if o != "/" else "/"
                for k in [k for k in tree if k.startswith(pre) and k != o]:
                    del tree[k]
            for p, m, node in entries:
                if node is None:  # hardlink: shares the target's inode
                    src = tree.get(_norm(m.linkname))
                    if src is None:
                        continue
                    if src.ino is None:
                        ino_counter[0] += 1
                        src.ino = ino_counter[0]
                    node = Node(src.typ, src.mode, src.uid, src.gid, src.size, src.ref, src.ino, src.mtime)
                old = tree.get(p)
                if old is not None and not (old.typ == "d" and node.typ == "d"):
                    _remove_subtree(tree, p)
                q = _parent(p)
                missing = []
                while q != "/" and q not in tree:
                    missing.append(q)
                    q = _parent(q)
                for q in missing:
                    tree[q] = Node("d", 0o755, 0, 0, None, None, None, None)
                tree[p] = node
    return tree, found


def _esc(p):
    out = []
    for ch in p:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif o <= 0x20 or o == 0x7f:
            out.append("\\%03o" % o)
        else:
            out.append(ch)
    return "".join(out)


def _excluded(path, globs):
    for top in EXCLUDE_ALWAYS:
        if path == top or path.startswith(top + "/"):
            return True
    for g in globs:
        if fnmatch.fnmatchcase(path, g):
            return True
        q = path
        while q != "/":
            q = _parent(q)
            if q != "/" and fnmatch.fnmatchcase(q, g):
                return True
    return False


def tree_lines(tree, globs):
    lines = []
    for p in sorted(tree):
        if _excluded(p, globs):
            continue
        n = tree[p]
        if n.typ == "f":
            size, ref = str(n.size), n.ref
        elif n.typ == "l":
            size, ref = "-", _esc(n.ref)
        elif n.typ in ("c", "b"):
            size, ref = "-", n.ref
        else:
            size, ref = "-", "-"
        lines.append("%s %s %04o %d %d %s %s" % (_esc(p), n.typ, n.mode, n.uid, n.gid, size, ref))
    return lines


def times_lines(tree, tree_globs, time_globs):
    """`PATH MTIME` for every path matching one of time_globs (`*` = every path)."""
    out = []
    for p in sorted(tree):
        if _excluded(p, tree_globs):
            continue
        if not any(fnmatch.fnmatchcase(p, g) for g in time_globs):
            continue
        mt = tree[p].mtime
        out.append("%s %s" % (_esc(p), "-" if mt is None else str(mt)))
    return out


def hardlink_lines(tree, globs):
    groups = {}
    for p, n in tree.items():
        if n.ino is not None and not _excluded(p, globs):
            groups.setdefault(n.ino, []).append(p)
    return sorted(" ".join(_esc(x) for x in sorted(paths))
                  for paths in groups.values() if len(paths) > 1)


def summarize(layout, case, scan_for=()):
    digest, man = find_manifest(layout)
    cfg = _read_json(layout, man["config"]["digest"])
    tree, found = apply_layers(layout, man, scan_for)
    conf = {"architecture": cfg.get("architecture"), "os": cfg.get("os"),
            "config": cfg.get("config") or {}}
    if cfg.get("variant"):
        conf["variant"] = cfg["variant"]
    hist = [{"created_by": GO_POINTER.sub("0xADDR", h.get("created_by", "")),
             "empty_layer": bool(h.get("empty_layer", False))}
            for h in cfg.get("history") or []]
    with open(_blob(layout, man["config"]["digest"]), "rb") as f:
        rawcfg = f.read()
    for s in scan_for:
        if s and s in rawcfg:
            found.add(s)
    globs = case["tree_exclude"]
    return dict(tree=tree_lines(tree, globs), hardlinks=hardlink_lines(tree, globs),
                config=conf, history=hist, layers=len(man.get("layers", [])), found=found,
                times=times_lines(tree, globs, case["times"]) if case["times"] else [],
                digest=digest)


# ----------------------------------------------------------------- progress
def parse_steps(output):
    """--progress=plain output -> {step name: CACHED | RUN | ERROR | -}. Only Dockerfile
    steps ("[stage N/M] ..."); FROM steps get "-" (BuildKit always reports an image
    source DONE, never CACHED, so only their names are compared)."""
    names = {}
    status = {}
    for line in output.splitlines():
        m = re.match(r"^#(\d+) (.*)$", line)
        if not m:
            continue
        vid, rest = m.group(1), m.group(2)
        if vid not in names:
            names[vid] = rest
            continue
        if rest == "CACHED":
            status[vid] = "CACHED"
        elif rest.startswith("DONE") and status.get(vid) != "CACHED":
            status[vid] = "RUN"
        elif rest.startswith("ERROR"):
            status[vid] = "ERROR"
    steps = {}
    for vid, name in names.items():
        if not STEP_NAME.match(name):
            continue
        st = status.get(vid, "?")
        if re.match(r"^\[[^\]]*\] FROM ", name):
            st = "-"
        prev = steps.get(name)
        if prev is None or prev == "?" or st == "CACHED":
            steps[name] = st
    return steps


def steps_lines(steps):
    return ["%s %s" % (steps[n], n) for n in sorted(steps)]


def parse_steps_file(path):
    steps = {}
    for l in read_lines(path):
        st, _, name = l.partition(" ")
        steps[name] = st
    return steps


def compare_steps(exp, got, label):
    """None or a message; name mismatches are reported apart from status mismatches."""
    missing = sorted(set(exp) - set(got))
    extra = sorted(set(got) - set(exp))
    status = [(n, exp[n], got[n]) for n in sorted(set(exp) & set(got))
              if exp[n] != "-" and exp[n] != got[n]]
    parts = []
    if status:
        n, e, g = status[0]
        parts.append("%s: cache status of %r: expected %s, got %s%s" % (
            label, n, e, g, " (+%d more)" % (len(status) - 1) if len(status) > 1 else ""))
    if missing or extra:
        msg = "%s: step names differ:" % label
        if missing:
            msg += " expected %r" % missing[0]
        if extra:
            msg += " unexpected %r" % extra[0]
        if len(missing) + len(extra) > 2:
            msg += " (%d missing, %d unexpected)" % (len(missing), len(extra))
        parts.append(msg)
    return "; ".join(parts) or None


# ----------------------------------------------------------------- cases
def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [l.rstrip("\n") for l in f if l.strip() and not l.lstrip().startswith("#")]


def load_case(d):
    c = {"dir": d, "name": os.path.basename(d), "ctx": os.path.join(d, "ctx")}
    c["build_args"] = read_lines(os.path.join(d, "build-args"))
    c["env"] = [l.strip() for l in read_lines(os.path.join(d, "env"))]
    c["secrets"] = []
    for l in read_lines(os.path.join(d, "secrets")):
        sid, f = l.split("=", 1)
        c["secrets"].append((sid.strip(), os.path.join(d, f.strip())))
    t = read_lines(os.path.join(d, "target"))
    c["target"] = t[0].strip() if t else None
    c["ssh"] = [x.strip() for x in read_lines(os.path.join(d, "ssh"))]
    c["tree_exclude"] = [x.strip() for x in read_lines(os.path.join(d, "tree-exclude"))]
    c["times"] = [x.strip() for x in read_lines(os.path.join(d, "times"))]
    if not c["times"] and os.path.exists(os.path.join(d, "expected-times.txt")):
        c["times"] = ["*"]
    fn = read_lines(os.path.join(d, "dockerfile-name"))
    c["dockerfile"] = fn[0].strip() if fn else None
    c["output_opts"] = ",".join(x.strip() for x in read_lines(os.path.join(d, "output-opts")))
    ee = os.path.join(d, "expected-error")
    c["expected_error"] = read_lines(ee) if os.path.exists(ee) else None
    edits = []
    if os.path.exists(os.path.join(d, "edit.sh")):
        edits.append(os.path.join(d, "edit.sh"))
    numbered = glob.glob(os.path.join(d, "edit-*.sh"))
    numbered.sort(key=lambda p: int(re.match(r"edit-(\d+)\.sh$", os.path.basename(p)).group(1)))
    edits += numbered
    if not edits and any(re.match(r"build-args-\d+$", f) for f in os.listdir(d)):
        # a cache case that only changes build args: rebuild N runs no script
        n = max(int(f.split("-")[-1]) for f in os.listdir(d) if re.match(r"build-args-\d+$", f))
        edits = [""] * n
    c["edits"] = edits
    # build-args-N: the build args of rebuild N (instead of `build-args`)
    c["build_args_n"] = {}
    for p in glob.glob(os.path.join(d, "build-args-*")):
        m = re.match(r"build-args-(\d+)$", os.path.basename(p))
        if m:
            c["build_args_n"][int(m.group(1))] = read_lines(p)
    return c


def prepare_ctx(case, tmp):
    """Copy ctx/ to a scratch dir, normalise modes the way a git checkout with umask 022
    leaves them (dirs 0755, files 0755 if owner-executable else 0644; symlinks kept),
    then run the case's optional ctx-setup.sh there."""
    dst = os.path.join(tmp, "ctx")
    subprocess.run(["cp", "-a", case["ctx"], dst], check=True)
    for root, dirs, files in os.walk(dst):
        os.chmod(root, 0o755)
        for fn in files:
            fp = os.path.join(root, fn)
            if not os.path.islink(fp):
                os.chmod(fp, 0o755 if os.lstat(fp).st_mode & 0o100 else 0o644)
    setup = os.path.join(case["dir"], "ctx-setup.sh")
    if os.path.exists(setup):
        subprocess.run(["sh", "-e", setup], cwd=dst, check=True)
    return dst


# ----------------------------------------------------------------- builders
class Builder:
    name = "?"

    def fresh_cache(self):
        """Called before every cache case: the first build must not find anything."""

    def end_cache(self):
        pass

    def argv(self, case, ctx, out, ssh_sock, no_cache):
        raise NotImplementedError

    def env(self, case):
        return dict(os.environ)

    def close(self):
        pass


class Buildctl(Builder):
    name = "buildctl"

    def __init__(self):
        self.bin = os.environ.get("KILN_BUILDCTL") or "buildctl"
        self.addr = os.environ.get("BUILDKIT_HOST") or DEFAULT_ADDR

    def fresh_cache(self):
        subprocess.run([self.bin, "--addr", self.addr, "prune", "--all"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def argv(self, case, ctx, out, ssh_sock, no_cache):
        a = [self.bin, "--addr", self.addr, "build", "--progress=plain"]
        if no_cache:
            a.append("--no-cache")
        a += ["--frontend", "dockerfile.v0", "--local", "context=" + ctx]
        if case["dockerfile"]:
            p = os.path.join(ctx, case["dockerfile"])
            a += ["--local", "dockerfile=" + os.path.dirname(p),
                  "--opt", "filename=" + os.path.basename(p)]
        else:
            a += ["--local", "dockerfile=" + ctx]
        for kv in case["build_args"]:
            a += ["--opt", "build-arg:" + kv]
        # buildx passes SOURCE_DATE_EPOCH from its environment as a build arg
        for kv in case["env"]:
            if kv.startswith("SOURCE_DATE_EPOCH=") and not any(
                    b.startswith("SOURCE_DATE_EPOCH=") for b in case["build_args"]):
                a += ["--opt", "build-arg:" + kv]
        for sid, src in case["secrets"]:
            a += ["--secret", "id=%s,src=%s" % (sid, src)]
        for sid in case["ssh"]:
            a += ["--ssh", "%s=%s" % (sid, ssh_sock)]
        if case["target"]:
            a += ["--opt", "target=" + case["target"]]
        o = "type=oci,dest=%s,name=x" % out
        if case["output_opts"]:
            o += "," + case["output_opts"]
        a += ["--output", o]
        return a


class Kiln(Builder):
    name = "kiln"

    def __init__(self, root_base):
        self.bin = os.environ.get("KILN_BIN") or "kiln"
        self.root_base = root_base
        self.n = 0
        self.shared = os.path.join(root_base, "root-shared")
        self.root = self.shared

    def fresh_cache(self):
        """A cache case gets its own state directory, removed by end_cache."""
        self.n += 1
        self.root = os.path.join(self.root_base, "root-%d" % self.n)
        os.makedirs(self.root, exist_ok=True)

    def end_cache(self):
        if self.root != self.shared:
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = self.shared

    def argv(self, case, ctx, out, ssh_sock, no_cache):
        o = "type=oci,dest=%s" % out
        if case["output_opts"]:
            o += "," + case["output_opts"]
        a = [self.bin, "build", "--progress=plain", "-o", o]
        if no_cache:
            a.append("--no-cache")
        if case["dockerfile"]:
            a += ["-f", os.path.join(ctx, case["dockerfile"])]
        for kv in case["build_args"]:
            a += ["--build-arg", kv]
        for sid, src in case["secrets"]:
            a += ["--secret", "id=%s,src=%s" % (sid, src)]
        for sid in case["ssh"]:
            a += ["--ssh", "%s=%s" % (sid, ssh_sock)]
        if case["target"]:
            a += ["--target", case["target"]]
        a.append(ctx)
        return a

    def env(self, case):
        e = dict(os.environ)
        e["KILN_ROOT"] = self.root
        for kv in case["env"]:
            k, _, v = kv.partition("=")
            e[k] = v
        return e


def error_summary(output):
    """The builder's last error line(s) of a failed build (the whole tail if none)."""
    lines = [l.strip() for l in output.splitlines()]
    errs = [l for l in lines if re.search(r"(^error|^ERROR|^#\d+ ERROR|failed to solve|ERROR:)", l)]
    if errs:
        return " | ".join(dict.fromkeys(errs[-2:]))
    return output.strip()[-600:]


def run_build(argv, timeout, env):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, env=env, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        return 124, (e.stdout or b"").decode("utf-8", "replace") + "\n[run.py: build timed out]"
    except FileNotFoundError as e:
        return 127, str(e)


def start_ssh_agent(tmp):
    sock = os.path.join(tmp, "agent.sock")
    p = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    return p, sock


def extract_oci(out, layout):
    os.makedirs(layout)
    with tarfile.open(out) as tf:
        for m in tf.getmembers():
            if m.isreg() and ".." not in m.name:
                dest = os.path.join(layout, _norm(m.name).lstrip("/"))
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with tf.extractfile(m) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst)


class Result:
    def __init__(self):
        self.ok = True
        self.msg = ""
        self.summary = None
        self.steps = []      # one {name: status} per rebuild of a cache case
        self.log = []        # (label, argv, output)


def do_case(case, builder, timeout, no_cache=False):
    """Builds one case (a cache case: first build, then edit + rebuild per edit script).
    Returns a Result; for error cases ok means "failed as expected"."""
    r = Result()
    tmp = tempfile.mkdtemp(prefix="kiln-diff-")
    agent = None
    try:
        ctx = prepare_ctx(case, tmp)
        ssh_sock = None
        if case["ssh"]:
            agent, ssh_sock = start_ssh_agent(tmp)
        env = builder.env(case)
        if ssh_sock:
            env["SSH_AUTH_SOCK"] = ssh_sock
        cache_case = bool(case["edits"])
        if cache_case:
            builder.fresh_cache()
            env = builder.env(case)
            if ssh_sock:
                env["SSH_AUTH_SOCK"] = ssh_sock
        out = os.path.join(tmp, "image.tar")
        rounds = [None] + case["edits"]
        for i, edit in enumerate(rounds):
            if edit:
                p = subprocess.run(["sh", "-e", edit], cwd=ctx, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
                if p.returncode != 0:
                    r.ok, r.msg = False, "%s failed: %s" % (os.path.basename(edit), p.stdout.decode()[-300:])
                    return r
            if os.path.exists(out):
                os.remove(out)
            bcase = case
            if i in case["build_args_n"]:
                bcase = dict(case, build_args=case["build_args_n"][i])
            argv = builder.argv(bcase, ctx, out, ssh_sock, no_cache and not cache_case)
            rc, output = run_build(argv, timeout, env)
            label = "build" if i == 0 else "rebuild-%d" % i
            r.log.append((label, argv, output))
            if case["expected_error"] is not None:
                if rc == 0:
                    r.ok, r.msg = False, "build succeeded but an error was expected: %r" % case["expected_error"]
                    return r
                for l in case["expected_error"]:
                    if l.strip() not in output:
                        r.ok, r.msg = False, "build failed (rc=%d) but output lacks %r; got: %s" % (
                            rc, l.strip(), error_summary(output))
                        return r
                r.msg = "failed as expected"
                return r
            if rc != 0:
                r.ok, r.msg = False, "%s failed rc=%d: %s" % (label, rc, error_summary(output))
                return r
            if not os.path.exists(out):
                r.ok, r.msg = False, "builder exited 0 but wrote no %s" % out
                return r
            if i > 0:
                r.steps.append(parse_steps(output))
        layout = os.path.join(tmp, "oci")
        extract_oci(out, layout)
        r.tar = out
        scan = []
        for _, src in case["secrets"]:
            with open(src, "rb") as f:
                v = f.read()
            scan += [v, v.strip()]
        r.summary = summarize(layout, case, tuple(scan))
        r.msg = "built"
        if getattr(do_case, "keep", None):
            shutil.copy(out, os.path.join(do_case.keep, case["name"] + ".tar"))
        return r
    finally:
        if case["edits"]:
            builder.end_cache()
        if agent:
            agent.terminate()
            agent.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def first_diff_lines(exp, got, what):
    for l in difflib.unified_diff(exp, got, lineterm="", n=0):
        if l.startswith(("---", "+++", "@@")):
            continue
        return "%s differs: %s%s" % (what, "expected " if l[0] == "-" else "unexpected ",
                                     l[1:] if l[0] in "-+" else l)
    return None


def _canon(obj):
    return json.dumps(obj, indent=2, sort_keys=True)


def _lines(path):
    with open(path) as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def compare_case(case, r):
    d = case["dir"]
    diffs = []
    # cache status first: it is what cache cases are about
    for i, got in enumerate(r.steps, 1):
        p = os.path.join(d, "expected-cached-%d.txt" % i)
        if os.path.exists(p):
            m = compare_steps(parse_steps_file(p), got, "rebuild %d" % i)
            if m:
                diffs.append(m)
    summ = r.summary
    if summ["found"]:
        diffs.append("secret value found in the image (layers or config)")
    exp_tree = _lines(os.path.join(d, "expected-tree.txt"))
    if exp_tree != summ["tree"]:
        exp_map = {l.split(" ", 1)[0]: l for l in exp_tree}
        got_map = {l.split(" ", 1)[0]: l for l in summ["tree"]}
        msg = None
        for p in sorted(set(exp_map) | set(got_map)):
            e, g = exp_map.get(p), got_map.get(p)
            if e != g:
                if e is None:
                    msg = "tree: unexpected path: %s" % g
                elif g is None:
                    msg = "tree: missing path: %s" % e
                else:
                    msg = "tree: %s: expected '%s', got '%s'" % (p, e, g)
                break
        diffs.append(msg or first_diff_lines(exp_tree, summ["tree"], "tree"))
    hl = os.path.join(d, "expected-hardlinks.txt")
    if os.path.exists(hl):
        exp = read_lines(hl)
        if exp != summ["hardlinks"]:
            diffs.append(first_diff_lines(exp, summ["hardlinks"], "hardlinks") or "hardlinks differ")
    with open(os.path.join(d, "expected-config.json")) as f:
        exp_conf = json.load(f)
    if _canon(exp_conf) != _canon(summ["config"]):
        diffs.append(first_diff_lines(_canon(exp_conf).splitlines(),
                                      _canon(summ["config"]).splitlines(), "config"))
    with open(os.path.join(d, "expected-history.json")) as f:
        exp_hist = json.load(f)
    if exp_hist != summ["history"]:
        for i in range(max(len(exp_hist), len(summ["history"]))):
            e = exp_hist[i] if i < len(exp_hist) else None
            g = summ["history"][i] if i < len(summ["history"]) else None
            if e != g:
                diffs.append("history[%d]: expected %s, got %s" % (i, json.dumps(e), json.dumps(g)))
                break
    with open(os.path.join(d, "expected-layers")) as f:
        exp_layers = int(f.read().strip())
    if exp_layers != summ["layers"]:
        diffs.append("layers: expected %d, got %d" % (exp_layers, summ["layers"]))
    tp = os.path.join(d, "expected-times.txt")
    if os.path.exists(tp):
        exp = {l.rsplit(" ", 1)[0]: l for l in read_lines(tp)}
        got = {l.rsplit(" ", 1)[0]: l for l in summ["times"]}
        for p in sorted(exp):
            if exp[p] != got.get(p):
                diffs.append("mtime: expected %s, got %s" % (exp[p], got.get(p, p + " (missing)")))
                break
    dp = os.path.join(d, "expected-manifest-digest")
    if os.path.exists(dp):
        exp = read_lines(dp)[0].strip()
        if exp != summ["digest"]:
            diffs.append("manifest digest: expected %s, got %s" % (exp, summ["digest"]))
    return "; ".join(diffs) if diffs else None


def write_expected(case, r):
    d = case["dir"]
    summ = r.summary

    def w(name, text):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)

    w("expected-tree.txt", "".join(l + "\n" for l in summ["tree"]))
    hl = os.path.join(d, "expected-hardlinks.txt")
    if summ["hardlinks"]:
        w("expected-hardlinks.txt", "".join(l + "\n" for l in summ["hardlinks"]))
    elif os.path.exists(hl):
        os.remove(hl)
    w("expected-config.json", _canon(summ["config"]) + "\n")
    w("expected-history.json", json.dumps(summ["history"], indent=2) + "\n")
    w("expected-layers", "%d\n" % summ["layers"])
    if case["times"]:
        w("expected-times.txt", "".join(l + "\n" for l in summ["times"]))
    if os.path.exists(os.path.join(d, "expected-manifest-digest")) or \
            os.path.exists(os.path.join(d, "reproducible")):
        w("expected-manifest-digest", summ["digest"] + "\n")
    for i, steps in enumerate(r.steps, 1):
        w("expected-cached-%d.txt" % i, "".join(l + "\n" for l in steps_lines(steps)))


def list_cases(patterns, root=HERE):
    dirs = sorted(d for d in glob.glob(os.path.join(root, "[0-9][0-9][0-9]-*")) if os.path.isdir(d))
    if patterns:
        dirs = [d for d in dirs if any(fnmatch.fnmatch(os.path.basename(d), p) or
                                       os.path.basename(d).startswith(p) for p in patterns)]
    return [load_case(d) for d in dirs]


def check_bases():
    """None if every base image answers with the recorded digest, else a message."""
    problems = []
    for ref, want in BASES.items():
        name, tag = ref.split(":")
        req = urllib.request.Request(
            "http://%s/v2/%s/manifests/%s" % (REGISTRY, name, tag), method="HEAD",
            headers={"Accept": ", ".join([
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json"])})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                got = resp.headers.get("Docker-Content-Digest")
        except Exception as e:  # noqa
            return "base images unreachable at %s (%s/%s: %s)" % (REGISTRY, REGISTRY, ref, e)
        if got and got != want:
            problems.append("%s/%s is %s, the corpus was recorded against %s" % (REGISTRY, ref, got, want))
    return "; ".join(problems) or None


def log_result(keep, case, r):
    if not keep:
        return
    os.makedirs(keep, exist_ok=True)
    with open(os.path.join(keep, case["name"] + ".log"), "w") as f:
        for label, argv, output in r.log:
            f.write("=== %s: %s\n%s\n" % (label, " ".join(shlex.quote(a) for a in argv), output))


def record_case(c, builder, timeout):
    """Two full runs (a cache case: each from an empty cache; otherwise the second with
    --no-cache); the expected files are written only when both agree."""
    r1 = do_case(c, builder, timeout, no_cache=False)
    if c["expected_error"] is not None:
        return r1.ok, r1.msg, r1
    if r1.summary is None:
        return False, r1.msg, r1
    r2 = do_case(c, builder, timeout, no_cache=True)
    if r2.summary is None:
        return False, "second run: " + r2.msg, r1
    keys = ["tree", "hardlinks", "config", "history", "layers", "times"]
    if os.path.exists(os.path.join(c["dir"], "reproducible")) or \
            os.path.exists(os.path.join(c["dir"], "expected-manifest-digest")):
        keys.append("digest")
    diffs = [k for k in keys if r1.summary[k] != r2.summary[k]]
    if r1.steps != r2.steps:
        diffs.append("cache steps")
    if diffs:
        return False, "nondeterministic %s: %s" % (diffs, first_diff_lines(
            r1.summary["tree"], r2.summary["tree"], "tree") or ""), r1
    if r1.summary["found"] or r2.summary["found"]:
        return False, "secret value found in image", r1
    for steps in r1.steps:
        if any(v in ("?", "ERROR") for v in steps.values()):
            return False, "unclassified step status: %s" % steps, r1
    write_expected(c, r1)
    return True, "recorded (%d paths, %d layers%s)" % (
        len(r1.summary["tree"]), r1.summary["layers"],
        ", %d rebuilds" % len(r1.steps) if r1.steps else ""), r1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", help="case names, prefixes or globs (default: all)")
    ap.add_argument("--preset", choices=["kiln", "buildctl"], default="kiln")
    ap.add_argument("--cases-dir", default=HERE,
                    help="directory holding the NNN-name/ cases (default: this script's)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per build")
    ap.add_argument("--keep", help="directory to keep build logs and OCI tarballs in")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the build log of failing cases")
    ap.add_argument("--record", action="store_true",
                    help="(buildctl only) build every case twice and write expected-* when both agree")
    a = ap.parse_args()

    if a.record and a.preset != "buildctl":
        print("--record needs --preset buildctl (the corpus is BuildKit's behaviour)")
        return 2
    cases = list_cases(a.cases, os.path.abspath(a.cases_dir))
    if not cases:
        print("no cases found")
        return 2
    base_problem = check_bases()
    if base_problem:
        print("run.py: " + base_problem)
        if os.environ.get("CI") == "true":
            for c in cases:
                print("FAIL %s: %s" % (c["name"], base_problem))
            print("differential-e2e: 0 passed, %d failed" % len(cases))
            return 1
        print("run.py: skipping every case (set CI=true to make this a failure)")
        print("differential-e2e: 0 passed, 0 failed")
        return 0

    work = tempfile.mkdtemp(prefix="kiln-diff-roots-")
    builder = Buildctl() if a.preset == "buildctl" else Kiln(work)
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
        do_case.keep = a.keep
    passed = failed = 0
    try:
        for c in cases:
            try:
                if a.record:
                    ok, msg, r = record_case(c, builder, a.timeout)
                    log_result(a.keep, c, r)
                    print("%s %s: %s" % ("OK  " if ok else "FAIL", c["name"], msg))
                else:
                    r = do_case(c, builder, a.timeout, no_cache=(a.preset == "buildctl"))
                    log_result(a.keep, c, r)
                    ok, msg = r.ok, r.msg
                    if ok and r.summary is not None:
                        d = compare_case(c, r)
                        if d:
                            ok, msg = False, d
                    if ok:
                        print("PASS %s" % c["name"])
                    else:
                        print("FAIL %s: %s" % (c["name"], msg))
                        if a.verbose:
                            for label, argv, output in r.log:
                                print("     --- %s output tail ---\n%s" % (label, output[-4000:]))
            except Exception as e:  # noqa
                ok = False
                print("FAIL %s: runner error: %r" % (c["name"], e))
            passed += ok
            failed += not ok
            sys.stdout.flush()
    finally:
        builder.close()
        shutil.rmtree(work, ignore_errors=True)
    print("differential-e2e: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
