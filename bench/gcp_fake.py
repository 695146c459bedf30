#!/usr/bin/env python3
"""Serve generated Google Cloud projects over fake IAM v1 and Resource Manager v3 APIs on 127.0.0.1.

The server plays every Google endpoint that `idrift scan` calls with an
`authorized_user` credential file whose `token_uri` is this server:

- the OAuth 2.0 token endpoint (`POST /token`), which accepts the refresh
  token grant as JSON, as google-cloud-auth 1.19 sends it, or as a form;
- IAM v1 `serviceAccounts.list`
  (`GET /v1/projects/P/serviceAccounts?pageSize=N&pageToken=T`), paged by
  `pageSize` (default 20, maximum 100, as the IAM v1 REST reference for
  projects.serviceAccounts.list states) with an opaque `nextPageToken`
  that the last page leaves out;
- IAM v1 `serviceAccounts.keys.list`
  (`GET /v1/projects/P/serviceAccounts/EMAIL/keys`), not paged;
- IAM v1 `serviceAccounts.getIamPolicy`
  (`POST /v1/projects/P/serviceAccounts/EMAIL:getIamPolicy`), an empty
  policy (`{"etag": "ACAB"}`) for every account;
- IAM v1 `workloadIdentityPools.list`
  (`GET /v1/projects/P/locations/global/workloadIdentityPools`), no pools;
- Resource Manager v3 `projects.getIamPolicy`
  (`POST /v3/projects/P:getIamPolicy`).

Every API request needs `Authorization: Bearer` with a token that this
server issued. Errors use Google's `{"error": {"code", "message", "status"}}`
body. Any other path, such as a metadata server request that
`GCE_METADATA_HOST` sent here, gets a 404 and is counted as "other".

The fake waits --latency-ms before each response. It serves each connection
on its own thread, so concurrent requests wait in parallel, as on a real
network. `GET /bench/requests` returns the requests served so far by kind,
the non-200 responses and the TCP connections accepted, as a check on
idrift's own count. It also returns the maximum number of requests in flight
at once since the previous `/bench/requests`, as a check on idrift's
concurrency limit. That request is neither counted nor waited for, but its
connection is counted.

The projects are generated in memory from the counts alone, so two runs
with the same options serve identical data. Each project `bench-project-NNN`
has --accounts service accounts with --user-keys USER_MANAGED and
--system-keys SYSTEM_MANAGED keys each, and an IAM policy of 4 bindings:
roles/owner to a user, roles/iam.serviceAccountAdmin to the first service
account, roles/viewer to a group and the second service account, and
roles/storage.objectViewer to the third. The server writes its port to
--port-file once it listens, and runs until it receives SIGTERM or SIGINT.
"""

import argparse
import hashlib
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

# The `authorized_user` credential file that bench/gcp_run.sh writes must
# carry these values, and the token endpoint rejects any others.
CLIENT_ID = "idrift-bench.apps.googleusercontent.com"
CLIENT_SECRET = "idrift-bench-client-secret"
REFRESH_TOKEN = "1//idrift-bench-refresh-token"
TOKEN_LIFETIME_SECONDS = 3600

DEFAULT_PAGE_SIZE = 20  # IAM's page size when a request has no pageSize
MAX_PAGE_SIZE = 100  # IAM's maximum pageSize for serviceAccounts.list

# IAM sends this deprecated etag on every service account.
SERVICE_ACCOUNT_ETAG = "MDEwMjE5MjA="
POLICY_ETAG = "BwX="
KEY_VALID_AFTER = "2024-02-03T04:05:06Z"
USER_KEY_VALID_BEFORE = "9999-12-31T23:59:59Z"
SYSTEM_KEY_VALID_BEFORE = "2024-02-19T04:05:06Z"

OWNER = "user:owner@example.com"
READERS = "group:readers@example.com"


def encode(record):
    return json.dumps(record, separators=(",", ":")).encode()


def project_id(number):
    return f"bench-project-{number:03d}"


def account_email(project, number):
    return f"sa-{number:03d}@{project}.iam.gserviceaccount.com"


def service_account(project_number, number):
    project = project_id(project_number)
    email = account_email(project, number)
    # 21 digits, unique across projects, like IAM's numeric ids.
    unique_id = f"1{project_number:010d}{number:010d}"
    return {
        "name": f"projects/{project}/serviceAccounts/{email}",
        "projectId": project,
        "uniqueId": unique_id,
        "email": email,
        "displayName": f"Bench service account {number}",
        "etag": SERVICE_ACCOUNT_ETAG,
        "oauth2ClientId": unique_id,
    }


def key(project, email, number, key_type):
    key_id = hashlib.sha1(f"{project}/{email}/{number}".encode()).hexdigest()
    valid_before = USER_KEY_VALID_BEFORE if key_type == "USER_MANAGED" else SYSTEM_KEY_VALID_BEFORE
    return {
        "name": f"projects/{project}/serviceAccounts/{email}/keys/{key_id}",
        "validAfterTime": KEY_VALID_AFTER,
        "validBeforeTime": valid_before,
        "keyAlgorithm": "KEY_ALG_RSA_2048",
        "keyOrigin": "GOOGLE_PROVIDED",
        "keyType": key_type,
    }


def policy(project, accounts):
    """Return the project's IAM policy. It names up to the first 3 service accounts."""
    members = [f"serviceAccount:{account_email(project, n)}" for n in range(1, min(accounts, 3) + 1)]
    bindings = [
        ("roles/owner", [OWNER]),
        ("roles/iam.serviceAccountAdmin", members[:1]),
        ("roles/viewer", [READERS] + members[1:2]),
        ("roles/storage.objectViewer", members[2:3]),
    ]
    return {
        "version": 3,
        "etag": POLICY_ETAG,
        "bindings": [{"role": role, "members": names} for role, names in bindings if names],
    }


class Project:
    """One generated project, with every response body encoded as JSON once."""

    def __init__(self, number, accounts, user_keys, system_keys):
        self.id = project_id(number)
        self.accounts = [encode(service_account(number, n)) for n in range(1, accounts + 1)]
        self.keys = {}
        for n in range(1, accounts + 1):
            email = account_email(self.id, n)
            records = [key(self.id, email, k, "USER_MANAGED") for k in range(1, user_keys + 1)]
            records += [
                key(self.id, email, user_keys + k, "SYSTEM_MANAGED") for k in range(1, system_keys + 1)
            ]
            self.keys[email] = encode({"keys": records})
        self.policy = encode(policy(self.id, accounts))


class Counter:
    """Requests served, by kind, shared by the handler threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.errors = 0
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0

    def add_connection(self):
        with self.lock:
            self.connections += 1

    def start(self, kind):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def finish(self, status):
        with self.lock:
            self.in_flight -= 1
            if status != 200:
                self.errors += 1

    def snapshot(self):
        with self.lock:
            counts = dict(self.counts)
            counts["total"] = sum(self.counts.values())
            # The entries below are not requests, so they are not in the total.
            counts["non_200"] = self.errors
            counts["connections"] = self.connections
            counts["max_in_flight"] = self.max_in_flight
            self.max_in_flight = self.in_flight
        return counts


class GoogleError(Exception):
    """An API error, sent as Google's JSON error body."""

    def __init__(self, code, status, message):
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def route(method, path):
    """Return the request's kind and its decoded path parameters.

    idrift percent-encodes every path segment, so segments are decoded
    before they are compared.
    """
    segments = [unquote(segment) for segment in path.split("/")]
    if method == "POST" and path == "/token":
        return "token", ()
    if method == "GET" and len(segments) == 5 and segments[1:3] == ["v1", "projects"] and segments[4] == "serviceAccounts":
        return "serviceAccounts", (segments[3],)
    if method == "GET" and len(segments) == 7 and segments[1:3] == ["v1", "projects"] and segments[4] == "serviceAccounts" and segments[6] == "keys":
        return "keys", (segments[3], segments[5])
    if method == "POST" and len(segments) == 6 and segments[1:3] == ["v1", "projects"] and segments[4] == "serviceAccounts" and segments[5].endswith(":getIamPolicy"):
        return "accountPolicy", (segments[3], segments[5][: -len(":getIamPolicy")])
    if method == "GET" and segments[1:3] == ["v1", "projects"] and segments[4:] == ["locations", "global", "workloadIdentityPools"]:
        return "pools", (segments[3],)
    if method == "POST" and len(segments) == 4 and segments[1:3] == ["v3", "projects"] and segments[3].endswith(":getIamPolicy"):
        return "getIamPolicy", (segments[3][: -len(":getIamPolicy")],)
    return "other", ()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Google's front ends offer
    server_version = "idrift-bench-fake-gcp"
    # http.server writes the headers and the body in two send() calls. With
    # Nagle's algorithm on, the body waits for the client's delayed ACK of the
    # headers on a kept-alive connection. bench/azure_fake.py measured about
    # 40 ms per request from that.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self.server.counter.add_connection()

    def log_message(self, format, *args):
        pass  # One line per request would cost more than the requests.

    def do_GET(self):
        self.handle_request("GET")

    def do_POST(self):
        self.handle_request("POST")

    def handle_request(self, method):
        # Read the whole body first, so that the kept-alive connection stays in step.
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        if method == "GET" and parts.path == "/bench/requests":
            self.send_json(200, self.server.counter.snapshot())
            return

        kind, arguments = route(method, parts.path)
        counter = self.server.counter
        counter.start(kind)
        status = 500
        try:
            time.sleep(self.server.latency)
            if kind == "token":
                status, response = self.serve_token(body)
            else:
                status, response = 200, self.serve_api(kind, arguments, parts.query, body)
        except GoogleError as error:
            status = error.code
            response = encode({"error": {"code": error.code, "message": error.message, "status": error.status}})
        finally:
            counter.finish(status)
        self.send_bytes(method, status, response)

    def serve_token(self, body):
        """Return the status and body of a refresh token grant."""
        content_type = self.headers.get("Content-Type", "")
        try:
            if content_type.startswith("application/json"):
                fields = json.loads(body)
            else:
                fields = dict(parse_qsl(body.decode()))
        except (ValueError, UnicodeDecodeError):
            return 400, encode({"error": "invalid_request", "error_description": "The body is neither JSON nor a form."})
        if not isinstance(fields, dict) or fields.get("grant_type") != "refresh_token":
            return 400, encode({"error": "unsupported_grant_type", "error_description": "Invalid grant_type."})
        if fields.get("client_id") != CLIENT_ID or fields.get("client_secret") != CLIENT_SECRET:
            return 401, encode({"error": "invalid_client", "error_description": "Unauthorized"})
        if fields.get("refresh_token") != REFRESH_TOKEN:
            return 400, encode({"error": "invalid_grant", "error_description": "Bad Request"})
        with self.server.token_lock:
            self.server.token_number += 1
            token = f"ya29.idrift-bench-{self.server.token_number}"
            self.server.issued.add(token)
        return 200, encode({"access_token": token, "expires_in": TOKEN_LIFETIME_SECONDS, "token_type": "Bearer"})

    def serve_api(self, kind, arguments, query, body):
        """Return the body of an API response, or raise GoogleError."""
        if kind == "other":
            raise GoogleError(404, "NOT_FOUND", f"Unsupported method or path: {self.command} {urlsplit(self.path).path}")
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.server.issued:
            raise GoogleError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        project = self.server.projects.get(arguments[0])
        if project is None:
            raise GoogleError(404, "NOT_FOUND", f"Project {arguments[0]} not found.")
        if kind == "serviceAccounts":
            return self.accounts_page(project, dict(parse_qsl(query, keep_blank_values=True)))
        if kind == "keys":
            keys = project.keys.get(arguments[1])
            if keys is None:
                raise GoogleError(404, "NOT_FOUND", f"Service account {arguments[1]} does not exist.")
            return keys
        if kind == "accountPolicy":
            if arguments[1] not in project.keys:
                raise GoogleError(404, "NOT_FOUND", f"Service account {arguments[1]} does not exist.")
            return encode({"etag": "ACAB"})
        if kind == "pools":
            return b"{}"
        try:
            options = json.loads(body or b"{}").get("options", {})
        except (ValueError, AttributeError):
            raise GoogleError(400, "INVALID_ARGUMENT", "The request body is not a JSON object.")
        if options.get("requestedPolicyVersion", 1) not in (1, 3):
            raise GoogleError(400, "INVALID_ARGUMENT", "requestedPolicyVersion must be 1 or 3.")
        return project.policy

    @staticmethod
    def accounts_page(project, params):
        try:
            size = int(params.get("pageSize") or DEFAULT_PAGE_SIZE)
            # The page token is the offset, in hex, behind a fixed prefix.
            token = params.get("pageToken", "")
            offset = int(token.removeprefix("bench-"), 16) if token else 0
        except ValueError:
            raise GoogleError(400, "INVALID_ARGUMENT", "Invalid pageSize or pageToken.")
        if size < 1 or offset < 0 or offset > len(project.accounts):
            raise GoogleError(400, "INVALID_ARGUMENT", "Invalid pageSize or pageToken.")
        end = offset + min(size, MAX_PAGE_SIZE)
        body = b'{"accounts":[' + b",".join(project.accounts[offset:end]) + b"]"
        if end < len(project.accounts):
            body += b',"nextPageToken":' + encode(f"bench-{end:x}")
        return body + b"}"

    def send_json(self, status, value):
        self.send_bytes("GET", status, encode(value))

    def send_bytes(self, method, status, body):
        if status != 200:
            print(f"fake Google Cloud: {status} for {method} {self.path}: {body.decode()}", file=sys.stderr, flush=True)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5. idrift opens up to
    # `concurrency` connections at once, and a connection that finds the
    # backlog full waits for a SYN retransmission, 1 s or more on Linux.
    request_queue_size = 256


def configure(server, projects, latency_ms):
    """Give a listening server the projects and the state that Handler reads."""
    server.projects = {project.id: project for project in projects}
    server.latency = latency_ms / 1000
    server.counter = Counter()
    server.issued = set()
    server.token_lock = threading.Lock()
    server.token_number = 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True, help="file to write the listening port to")
    parser.add_argument("--latency-ms", type=float, default=50, help="wait before each response, in milliseconds (default 50)")
    parser.add_argument("--projects", type=int, default=200, help="projects to generate (default 200)")
    parser.add_argument("--accounts", type=int, default=50, help="service accounts per project (default 50)")
    parser.add_argument("--user-keys", type=int, default=1, help="USER_MANAGED keys per service account (default 1)")
    parser.add_argument("--system-keys", type=int, default=1, help="SYSTEM_MANAGED keys per service account (default 1)")
    args = parser.parse_args()
    if not 1 <= args.projects <= 999:
        parser.error("--projects must be 1 to 999, because project ids have 3 digits")
    if not 1 <= args.accounts <= 999:
        parser.error("--accounts must be 1 to 999, because account names have 3 digits")
    if args.user_keys < 0 or args.system_keys < 0:
        parser.error("--user-keys and --system-keys must be 0 or more")

    started = time.monotonic()
    projects = [Project(n, args.accounts, args.user_keys, args.system_keys) for n in range(1, args.projects + 1)]
    server = Server(("127.0.0.1", 0), Handler)
    configure(server, projects, args.latency_ms)
    port = server.server_address[1]

    def stop(signum, frame):
        # shutdown() waits for serve_forever to return, so it runs on another thread.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    temporary = f"{args.port_file}.tmp"
    with open(temporary, "w") as file:
        file.write(f"{port}\n")
    os.replace(temporary, args.port_file)
    print(
        f"fake Google Cloud on http://127.0.0.1:{port}: generated in {time.monotonic() - started:.1f} s, "
        f"{args.projects} projects of {args.accounts} service accounts, each with {args.user_keys} "
        f"user-managed and {args.system_keys} system-managed keys; latency {args.latency_ms:g} ms",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
