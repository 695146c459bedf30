#!/usr/bin/env python3
"""Serve a generated Entra ID tenant over a fake Microsoft Graph v1.0 on 127.0.0.1.

The server plays two roles for `idrift scan`:

- the App Service managed identity endpoint (`GET /msi/token` with the
  `X-IDENTITY-HEADER` header), which idrift's azure_identity credential calls
  when IDENTITY_ENDPOINT and IDENTITY_HEADER are set;
- Graph v1.0 lists of users, service principals, applications and directory
  role assignments, paged by `$top` (default 100, capped by --page-size-cap)
  with an absolute `@odata.nextLink`, and each application's
  federatedIdentityCredentials.

The fake waits --latency-ms before each response. It serves each connection
on its own thread, so concurrent requests wait in parallel, as on a real
network. `$select` is accepted but ignored: records carry only the fields
idrift selects. `$expand=owners` on the application and service principal
lists is served as Graph serves it: pages of at most 100 records, each
with its (here always empty) `owners` list. `GET /bench/requests` returns the requests served so far by
kind and the TCP connections accepted, as a check on idrift's own count.
That request is not counted itself, but its connection is.

The tenant is generated in memory from the record counts alone, so two runs
with the same options serve identical data. The server writes its port to
--port-file once it listens, and runs until it receives SIGTERM or SIGINT.
"""

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

TENANT_ID = "0c0ffee0-0000-4000-8000-000000000001"
IDENTITY_HEADER = "idrift-bench-identity-header"
TOKEN_API_VERSION = "2019-08-01"
GRAPH_RESOURCE = "https://graph.microsoft.com"
TOKEN_LIFETIME_SECONDS = 86400
DEFAULT_PAGE_SIZE = 100  # Graph's page size when a request has no $top
EXPANDED_PAGE_SIZE = 100  # Graph's largest page when a request uses $expand

CREATED = "2024-01-02T03:04:05Z"
CREDENTIAL_START = "2024-02-03T04:05:06Z"
CREDENTIAL_END = "2027-02-03T04:05:06Z"

# Role template ids, as Entra ID defines them.
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_ROLE_ADMINISTRATOR = "e8611ab8-c189-46e8-94e1-60213ab1f814"
APPLICATION_ADMINISTRATOR = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
DIRECTORY_READERS = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"

# The first group of each generated GUID, one per kind of object.
USER, SERVICE_PRINCIPAL, APPLICATION, APP_ID, KEY, FEDERATED, ASSIGNMENT = range(1, 8)

LIST_PATHS = {
    "/v1.0/users": "users",
    "/v1.0/servicePrincipals": "servicePrincipals",
    "/v1.0/applications": "applications",
    "/v1.0/roleManagement/directory/roleAssignments": "roleAssignments",
}
FEDERATED_PREFIX = "/v1.0/applications/"
FEDERATED_SUFFIX = "/federatedIdentityCredentials"


def guid(kind, number):
    return f"{kind:08x}-0000-4000-8000-{number:012x}"


def encode(record):
    return json.dumps(record, separators=(",", ":")).encode()


def user(number):
    if number % 100 == 0:
        name = f"guest{number:06d}"
        return {
            "id": guid(USER, number),
            "userPrincipalName": f"{name}_example.org#EXT#@fake.onmicrosoft.com",
            "displayName": f"Guest {number}",
            "userType": "Guest",
            "accountEnabled": True,
            "createdDateTime": CREATED,
            "creationType": "Invitation",
            "externalUserState": "Accepted",
        }
    return {
        "id": guid(USER, number),
        "userPrincipalName": f"user{number:06d}@fake.onmicrosoft.com",
        "displayName": f"User {number}",
        "userType": "Member",
        "accountEnabled": number % 37 != 0,
        "createdDateTime": CREATED,
        "creationType": None,
        "externalUserState": None,
    }


def password_credential(number):
    return {
        "customKeyIdentifier": None,
        "displayName": f"secret-{number}",
        "endDateTime": CREDENTIAL_END,
        "hint": "Qx8",
        "keyId": guid(KEY, number),
        "secretText": None,
        "startDateTime": CREDENTIAL_START,
    }


def service_principal(number):
    return {
        "id": guid(SERVICE_PRINCIPAL, number),
        "appId": guid(APP_ID, number),
        "displayName": f"app-{number:05d}",
        "servicePrincipalType": "Application",
        "appOwnerOrganizationId": TENANT_ID,
        "alternativeNames": [],
        "accountEnabled": True,
        "passwordCredentials": [
            password_credential(2 * number - 1),
            password_credential(2 * number),
        ],
        "keyCredentials": [],
        "owners": [],
    }


def application(number):
    return {
        "id": guid(APPLICATION, number),
        "appId": guid(APP_ID, number),
        "displayName": f"app-{number:05d}",
        "createdDateTime": CREATED,
        "passwordCredentials": [],
        "keyCredentials": [],
        "owners": [],
    }


def federated_credentials(number):
    """Return application `number`'s federated credentials: one for even numbers, none for odd."""
    if number % 2:
        return []
    return [
        {
            "audiences": ["api://AzureADTokenExchange"],
            "description": None,
            "id": guid(FEDERATED, number),
            "issuer": "https://token.actions.githubusercontent.com",
            "name": f"github-main-{number}",
            "subject": f"repo:example/repo-{number}:ref:refs/heads/main",
        }
    ]


def role_assignments():
    grants = [
        (guid(USER, 1), GLOBAL_ADMINISTRATOR),
        (guid(USER, 2), GLOBAL_ADMINISTRATOR),
        (guid(USER, 3), PRIVILEGED_ROLE_ADMINISTRATOR),
        (guid(SERVICE_PRINCIPAL, 1), APPLICATION_ADMINISTRATOR),
        (guid(USER, 4), DIRECTORY_READERS),
    ]
    return [
        {
            "id": guid(ASSIGNMENT, number),
            "principalId": principal,
            "roleDefinitionId": role,
            "directoryScopeId": "/",
        }
        for number, (principal, role) in enumerate(grants, start=1)
    ]


class Tenant:
    """The generated directory, with every record encoded as JSON once."""

    def __init__(self, users, service_principals, applications):
        self.lists = {
            "users": [encode(user(n)) for n in range(1, users + 1)],
            "servicePrincipals": [
                encode(service_principal(n)) for n in range(1, service_principals + 1)
            ],
            "applications": [encode(application(n)) for n in range(1, applications + 1)],
            "roleAssignments": [encode(r) for r in role_assignments()],
        }
        self.federated = {
            guid(APPLICATION, n): [encode(c) for c in federated_credentials(n)]
            for n in range(1, applications + 1)
        }


class Counter:
    """Requests served, by kind, shared by the handler threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.connections = 0

    def add_connection(self):
        with self.lock:
            self.connections += 1

    def add(self, kind):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def snapshot(self):
        with self.lock:
            counts = dict(self.counts)
            connections = self.connections
        counts["total"] = sum(counts.values())
        counts["connections"] = connections  # not requests, so not in the total
        return counts


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Graph offers
    server_version = "idrift-bench-fake-graph"
    # http.server writes the headers and the body in two send() calls. With
    # Nagle's algorithm on, the body waits for the client's delayed ACK of the
    # headers on a kept-alive connection. That added about 40 ms per request
    # to idrift's scans in this benchmark.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self.server.counter.add_connection()

    def log_message(self, format, *args):
        pass  # One line per request would cost more than the requests.

    def do_GET(self):
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        if parts.path == "/bench/requests":
            self.send_json(200, self.server.counter.snapshot())
            return
        time.sleep(self.server.latency)
        if parts.path == "/msi/token":
            self.server.counter.add("token")
            self.serve_token(params)
            return
        self.server.counter.add(self.kind_of(parts.path))
        if self.headers.get("Authorization", "") not in self.server.issued:
            self.send_error_body(401, "InvalidAuthenticationToken", "Access token is missing or invalid.")
        elif parts.path in LIST_PATHS:
            self.serve_page(parts.path, params)
        elif parts.path.startswith(FEDERATED_PREFIX) and parts.path.endswith(FEDERATED_SUFFIX):
            app_id = parts.path[len(FEDERATED_PREFIX) : -len(FEDERATED_SUFFIX)]
            records = self.server.tenant.federated.get(app_id)
            if records is None:
                self.send_error_body(404, "Request_ResourceNotFound", f"Resource '{app_id}' does not exist.")
            else:
                self.send_page(f"applications('{app_id}')/federatedIdentityCredentials", records, None)
        else:
            self.send_error_body(404, "Request_UnsupportedQuery", f"Unsupported path {parts.path}.")

    @staticmethod
    def kind_of(path):
        if path in LIST_PATHS:
            return LIST_PATHS[path]
        if path.startswith(FEDERATED_PREFIX) and path.endswith(FEDERATED_SUFFIX):
            return "federatedIdentityCredentials"
        return "other"

    def serve_token(self, params):
        if self.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
            self.send_json(401, {"error": "invalid_request", "error_description": "missing or wrong X-IDENTITY-HEADER"})
            return
        if params.get("api-version") != TOKEN_API_VERSION or params.get("resource") != GRAPH_RESOURCE:
            self.send_json(400, {"error": "invalid_request", "error_description": f"unexpected query {params}"})
            return
        with self.server.token_lock:
            self.server.token_number += 1
            token = f"idrift-bench-token-{self.server.token_number}"
            self.server.issued.add(f"Bearer {token}")
        self.send_json(
            200,
            {
                "access_token": token,
                "expires_on": str(int(time.time()) + TOKEN_LIFETIME_SECONDS),
                "token_type": "Bearer",
                "resource": GRAPH_RESOURCE,
            },
        )

    def serve_page(self, path, params):
        try:
            top = int(params.get("$top", DEFAULT_PAGE_SIZE))
            offset = int(params.get("$skiptoken", "0"))
        except ValueError:
            self.send_error_body(400, "Request_BadRequest", "Invalid $top or $skiptoken.")
            return
        if not 1 <= top <= 999 or offset < 0:
            self.send_error_body(400, "Request_BadRequest", "$top must be 1 to 999.")
            return
        size = min(top, self.server.page_size_cap)
        if "$expand" in params:
            # Graph returns at most 100 records a page when a request expands a relationship.
            size = min(size, EXPANDED_PAGE_SIZE)
        records = self.server.tenant.lists[LIST_PATHS[path]]
        end = offset + size
        next_link = None
        if end < len(records):
            # The link repeats the request's query with a new $skiptoken, as Graph's does.
            query = [(k, v) for k, v in parse_qsl(urlsplit(self.path).query) if k != "$skiptoken"]
            query.append(("$skiptoken", str(end)))
            encoded = "&".join(f"{quote(k, safe='$')}={quote(v, safe=',')}" for k, v in query)
            next_link = f"{self.server.base_url}{path}?{encoded}"
        self.send_page(LIST_PATHS[path], records[offset:end], next_link)

    def send_page(self, entity_set, records, next_link):
        context = f"{self.server.base_url}/v1.0/$metadata#{entity_set}"
        body = b'{"@odata.context":' + encode(context)
        if next_link:
            body += b',"@odata.nextLink":' + encode(next_link)
        body += b',"value":[' + b",".join(records) + b"]}"
        self.send_bytes(200, body)

    def send_error_body(self, status, code, message):
        self.send_json(status, {"error": {"code": code, "message": message}})

    def send_json(self, status, value):
        self.send_bytes(status, encode(value))

    def send_bytes(self, status, body):
        if status != 200:
            print(f"fake Graph: {status} for GET {self.path}: {body.decode()}", file=sys.stderr, flush=True)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def configure(server, tenant, latency_ms, page_size_cap):
    """Give a listening server the tenant and the state that Handler reads."""
    server.tenant = tenant
    server.latency = latency_ms / 1000
    server.page_size_cap = page_size_cap
    server.counter = Counter()
    server.issued = set()
    server.token_lock = threading.Lock()
    server.token_number = 0
    server.base_url = f"http://127.0.0.1:{server.server_address[1]}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True, help="file to write the listening port to")
    parser.add_argument("--latency-ms", type=float, default=50, help="wait before each response, in milliseconds (default 50)")
    parser.add_argument("--page-size-cap", type=int, default=999, help="maximum records per page, below the request's $top (default 999)")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--service-principals", type=int, default=20_000)
    parser.add_argument("--applications", type=int, default=5_000)
    args = parser.parse_args()
    if args.page_size_cap < 1:
        parser.error("--page-size-cap must be at least 1")

    started = time.monotonic()
    tenant = Tenant(args.users, args.service_principals, args.applications)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    configure(server, tenant, args.latency_ms, args.page_size_cap)
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
    pages = {name: math.ceil(len(records) / min(999, args.page_size_cap)) for name, records in tenant.lists.items()}
    print(
        f"fake Graph on {server.base_url}: generated in {time.monotonic() - started:.1f} s, "
        f"{len(tenant.lists['users'])} users, {len(tenant.lists['servicePrincipals'])} service principals, "
        f"{len(tenant.lists['applications'])} applications, {len(tenant.lists['roleAssignments'])} role assignments, "
        f"{sum(map(len, tenant.federated.values()))} federated credentials; "
        f"latency {args.latency_ms:g} ms, page size cap {args.page_size_cap}, pages at $top=999: {pages}",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
