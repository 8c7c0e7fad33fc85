#!/usr/bin/env python3
"""A fake of the GitHub Actions cache service, for kiln's `type=gha` tests: GitHub's
service cannot run here. It speaks the real protocols as the runner's toolkit and
go-actions-cache use them:

- v1, REST under /_apis/artifactcache/: GET cache?keys=&version= (the exact key first,
  then the newest entry a key prefixes), POST caches (reserve; 409 when taken),
  PATCH caches/ID (Content-Range chunks), POST caches/ID (commit with the size); entries
  are downloaded from the archiveLocation it hands out (Range honoured);
- v2, twirp under /twirp/github.actions.results.api.v1.CacheService/: CreateCacheEntry,
  FinalizeCacheEntryUpload, GetCacheEntryDownloadURL, the entries being blobs in Azurite
  reached through signed (SAS) URLs, as GitHub keeps them in Azure Blob Storage;
- GitHub's REST listing GET /repos/OWNER/NAME/actions/caches?key=&ref= (ghtoken).

Every request but downloads needs `Authorization: Bearer TOKEN`. GET /_fake/stats
answers counts of requests by kind, for tests that check how many were made.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SAS_VERSION = "2021-08-06"
CONTAINER = "actions-cache"


class Store:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.entries = {}  # id -> dict(key, version, size, committed, path|blob)
        self.next_id = 1
        self.dir = tempfile.mkdtemp(prefix="gha-fake-")
        self.stats = {}

    def count(self, what):
        with self.lock:
            self.stats[what] = self.stats.get(what, 0) + 1

    def find(self, keys, version):
        """The exact key first, then the newest committed entry a key prefixes."""
        with self.lock:
            done = [e for e in self.entries.values() if e["committed"] and e["version"] == version]
            for key in keys:
                for entry in sorted(done, key=lambda e: -e["id"]):
                    if entry["key"] == key:
                        return entry
                for entry in sorted(done, key=lambda e: -e["id"]):
                    if entry["key"].startswith(key):
                        return entry
        return None

    def reserve(self, key, version):
        with self.lock:
            if any(e["key"] == key and e["version"] == version for e in self.entries.values()):
                return None
            entry = {"id": self.next_id, "key": key, "version": version, "size": 0,
                     "committed": False, "path": os.path.join(self.dir, str(self.next_id)),
                     "blob": "entries/%d" % self.next_id, "created": datetime.datetime.utcnow()}
            open(entry["path"], "wb").close()
            self.entries[self.next_id] = entry
            self.next_id += 1
            return entry


def azure_sign(key, string_to_sign):
    mac = hmac.new(base64.b64decode(key), string_to_sign.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def sas_url(args, blob, permissions):
    expiry = (datetime.datetime.utcnow() + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resource = "/blob/%s/%s/%s" % (args.azurite_account, CONTAINER, blob)
    fields = [permissions, "", expiry, resource, "", "", "", SAS_VERSION, "b", "", "", "", "", "", "", ""]
    signature = azure_sign(args.azurite_key, "\n".join(fields))
    query = urllib.parse.urlencode({"sv": SAS_VERSION, "sr": "b", "sp": permissions, "se": expiry, "sig": signature})
    return "%s/%s/%s?%s" % (args.azurite_url.rstrip("/"), CONTAINER, blob, query)


def azure_request(args, method, path, query=""):
    """A request to Azurite signed with the account key (shared key)."""
    url = args.azurite_url.rstrip("/") + "/" + path + ("?" + query if query else "")
    date = datetime.datetime.utcnow().strftime("%a, %d %b %Y %H:%M:%S GMT")
    parsed = urllib.parse.urlparse(url)
    canonical = "/%s%s" % (args.azurite_account, parsed.path)
    for name, value in sorted(urllib.parse.parse_qsl(parsed.query)):
        canonical += "\n%s:%s" % (name.lower(), value)
    string_to_sign = "%s\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:%s\nx-ms-version:%s\n%s" % (
        method, date, SAS_VERSION, canonical)
    request = urllib.request.Request(url, method=method, headers={
        "x-ms-date": date, "x-ms-version": SAS_VERSION, "Content-Length": "0",
        "Authorization": "SharedKey %s:%s" % (args.azurite_account, azure_sign(args.azurite_key, string_to_sign))})
    # Azurite on a loaded machine sometimes drops a connection: a few tries, so that a
    # test fails for what kiln does, not for the fake.
    for attempt in range(5):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers
        except urllib.error.HTTPError as error:
            return error.code, error.headers
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store = None

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", content_type="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self):
        # Go's client sends a section of a file chunked, without a length.
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def authorized(self, token):
        if self.headers.get("Authorization") == "Bearer " + token:
            return True
        self.body()
        self.reply(401, {"message": "bad credentials"})
        return False

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        store = self.store
        if url.path == "/_fake/stats":
            with store.lock:
                return self.reply(200, dict(store.stats))
        match = re.fullmatch(r"/download/(\d+)", url.path)
        if match:
            store.count("v1 download")
            entry = store.entries.get(int(match.group(1)))
            if not entry or not entry["committed"]:
                return self.reply(404, {"message": "no such entry"})
            data = open(entry["path"], "rb").read()
            ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if ranged:
                start = int(ranged.group(1))
                return self.reply(206, data[start:], "application/octet-stream",
                                  {"Content-Range": "bytes %d-%d/%d" % (start, len(data) - 1, len(data))})
            return self.reply(200, data, "application/octet-stream")
        if url.path == "/_apis/artifactcache/cache":
            if not self.authorized(store.args.token):
                return
            store.count("v1 lookup")
            entry = store.find(query.get("keys", "").split(","), query.get("version"))
            if not entry:
                return self.reply(204)
            return self.reply(200, {"cacheKey": entry["key"], "scope": store.args.scope,
                                    "archiveLocation": "http://127.0.0.1:%d/download/%d" % (
                                        self.server.server_address[1], entry["id"])})
        match = re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/caches", url.path)
        if match:
            if not self.authorized(store.args.ghtoken):
                return
            store.count("rest list")
            page, per_page = int(query.get("page", "1")), int(query.get("per_page", "30"))
            with store.lock:
                found = [e for e in store.entries.values()
                         if e["committed"] and e["key"].startswith(query.get("key", ""))
                         and query.get("ref", store.args.scope) == store.args.scope]
            found.sort(key=lambda e: e["id"])
            chunk = found[(page - 1) * per_page:page * per_page]
            return self.reply(200, {"total_count": len(found), "actions_caches": [
                {"id": e["id"], "ref": store.args.scope, "key": e["key"], "version": e["version"],
                 "size_in_bytes": e["size"]} for e in chunk]})
        self.reply(404, {"message": "not found: " + url.path})

    def do_PATCH(self):
        store = self.store
        match = re.fullmatch(r"/_apis/artifactcache/caches/(\d+)", self.path)
        if not match:
            return self.reply(404, {"message": "not found"})
        if not self.authorized(store.args.token):
            return
        store.count("v1 chunk")
        entry = store.entries.get(int(match.group(1)))
        ranged = re.fullmatch(r"bytes (\d+)-(\d+)/\*", self.headers.get("Content-Range") or "")
        data = self.body()
        if not entry or entry["committed"] or not ranged:
            return self.reply(400, {"message": "bad upload"})
        start, end = int(ranged.group(1)), int(ranged.group(2))
        if end - start + 1 != len(data):
            return self.reply(400, {"message": "Content-Range does not match the body"})
        with open(entry["path"], "r+b") as out:
            out.seek(start)
            out.write(data)
        self.reply(204)

    def do_POST(self):
        store = self.store
        body = self.body()
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return self.reply(400, {"message": "not JSON"})
        path = self.path
        if path.startswith("/_apis/artifactcache/") or path.startswith("/twirp/"):
            if self.headers.get("Authorization") != "Bearer " + store.args.token:
                return self.reply(401, {"message": "bad credentials"})
        if path == "/_apis/artifactcache/caches":
            store.count("v1 reserve")
            entry = store.reserve(request.get("key"), request.get("version"))
            if not entry:
                return self.reply(409, {"message": "Cache already exists.",
                                        "typeKey": "ArtifactCacheItemAlreadyExistsException"})
            return self.reply(201, {"cacheID": entry["id"]})
        match = re.fullmatch(r"/_apis/artifactcache/caches/(\d+)", path)
        if match:
            store.count("v1 commit")
            entry = store.entries.get(int(match.group(1)))
            size = os.path.getsize(entry["path"]) if entry else -1
            if not entry or request.get("size") != size:
                return self.reply(400, {"message": "size %s does not match the %d bytes uploaded" % (request.get("size"), size)})
            entry["size"], entry["committed"] = size, True
            return self.reply(204)
        service = "/twirp/github.actions.results.api.v1.CacheService/"
        if path == service + "CreateCacheEntry":
            store.count("v2 reserve")
            entry = store.reserve(request.get("key"), request.get("version"))
            if not entry:
                return self.reply(409, {"code": "already_exists", "msg": "cache entry already exists"})
            return self.reply(200, {"ok": True, "signed_upload_url": sas_url(store.args, entry["blob"], "cw")})
        if path == service + "FinalizeCacheEntryUpload":
            store.count("v2 commit")
            with store.lock:
                entry = next((e for e in store.entries.values() if e["key"] == request.get("key")
                              and e["version"] == request.get("version") and not e["committed"]), None)
            if not entry:
                return self.reply(404, {"code": "not_found", "msg": "no reserved entry"})
            status, headers = azure_request(store.args, "HEAD", "%s/%s" % (CONTAINER, entry["blob"]))
            size = int(headers.get("Content-Length", "-1")) if status == 200 else -1
            if size != request.get("size_bytes"):
                return self.reply(400, {"code": "invalid_argument",
                                        "msg": "size %s, the blob has %d (HEAD: %d)" % (request.get("size_bytes"), size, status)})
            entry["size"], entry["committed"] = size, True
            return self.reply(200, {"ok": True, "entry_id": str(entry["id"])})
        if path == service + "GetCacheEntryDownloadURL":
            store.count("v2 lookup")
            keys = [request.get("key")] + [k for k in request.get("restore_keys") or [] if k != request.get("key")]
            entry = store.find(keys, request.get("version"))
            if not entry:
                return self.reply(200, {"ok": False})
            return self.reply(200, {"ok": True, "matched_key": entry["key"],
                                    "signed_download_url": sas_url(store.args, entry["blob"], "r")})
        self.reply(404, {"message": "not found: " + path})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--ghtoken", default="")
    parser.add_argument("--scope", default="refs/heads/main")
    parser.add_argument("--azurite-url", default="")
    parser.add_argument("--azurite-account", default="devstoreaccount1")
    parser.add_argument("--azurite-key", default="")
    args = parser.parse_args()
    if args.azurite_url:
        status, _ = azure_request(args, "PUT", CONTAINER, "restype=container")
        if status not in (201, 409):
            raise SystemExit("creating the container in Azurite: HTTP %d" % status)
    Handler.store = Store(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
