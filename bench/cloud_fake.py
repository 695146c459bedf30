#!/usr/bin/env python3
"""Serve generated AWS accounts, an Entra ID tenant and Google Cloud projects on 127.0.0.1.

One process, one port per provider, each responding after --latency-ms:

- AWS: IAM and STS over the Query protocol (bench/aws_fake.py);
- Entra ID: Microsoft Graph v1.0 and the App Service managed identity
  token endpoint (bench/azure_fake.py's handler and tenant);
- Google Cloud: IAM v1, Resource Manager v3 and the OAuth token endpoint
  (bench/gcp_fake.py's handler and projects).

--providers serves a subset, so a harness can run one process per provider
when one Python process cannot keep up with the request rate.

--throttle-rate gives that fraction of API requests, picked by a seeded
random draw, with the provider's own throttling response after the same
latency: AWS `Throttling` with HTTP 400, Graph HTTP 429 `TooManyRequests`
with `Retry-After: --retry-after-seconds`, Google HTTP 429
`RESOURCE_EXHAUSTED`. Token and AssumeRole requests are never throttled,
because a credential that fails fails the whole scope.

Each port answers `GET /bench/requests` with its provider's request counts
and `GET /bench/activity` with the API requests served, those throttled,
the most in flight at once, and the Unix times of the first request's
arrival and the last response, all since the previous
`GET /bench/activity?reset=1`. Neither is counted or delayed.

The process writes the ports as JSON (`{"aws": PORT, ...}`) to --port-file
once every server listens, and runs until SIGTERM or SIGINT.
"""

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aws_fake  # noqa: E402
import azure_fake  # noqa: E402
import gcp_fake  # noqa: E402

PROVIDERS = ("aws", "azure", "gcp")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5. idrift opens up to one
    # connection per request in flight, and a connection that finds the
    # backlog full waits for a SYN retransmission, 1 s or more on Linux.
    request_queue_size = 1024


class Activity:
    """API requests of one port: throttling draws, requests in flight, first and last times."""

    def __init__(self, throttle_rate, seed):
        self.lock = threading.Lock()
        self.random = random.Random(seed)
        self.throttle_rate = throttle_rate
        self.reset()

    def reset(self):
        self.requests = 0
        self.throttled = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_start = None
        self.last_end = None

    def start(self, throttle_allowed):
        """Count a request that starts now; return True when it is to be throttled."""
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.first_start is None:
                self.first_start = time.time()
            throttled = throttle_allowed and self.random.random() < self.throttle_rate
            self.throttled += throttled
            return throttled

    def end(self):
        with self.lock:
            self.in_flight -= 1
            self.last_end = time.time()

    def snapshot(self, reset):
        with self.lock:
            values = {
                "requests": self.requests,
                "throttled": self.throttled,
                "max_in_flight": self.max_in_flight,
                "first_start": self.first_start,
                "last_end": self.last_end,
            }
            if reset:
                in_flight = self.in_flight
                self.reset()
                self.in_flight = in_flight
        return values


def activity_request(handler):
    """Send the activity for `/bench/activity` and return True; return False for any other path."""
    parts = urlsplit(handler.path)
    if parts.path != "/bench/activity":
        return False
    reset = dict(parse_qsl(parts.query)).get("reset") == "1"
    send(handler, 200, "application/json", json.dumps(handler.server.activity.snapshot(reset)).encode())
    return True


def send(handler, status, content_type, body, headers=()):
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers:
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


class AwsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as AWS endpoints offer
    server_version = "idrift-bench-fake-aws"
    # http.server writes headers and body in two send() calls; see azure_fake.py.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self.server.counter.add_connection()

    def log_message(self, format, *args):
        pass  # One line per request would cost more than the requests.

    def do_GET(self):
        if activity_request(self):
            return
        if urlsplit(self.path).path == "/bench/requests":
            send(self, 200, "application/json", json.dumps(self.server.counter.snapshot()).encode())
            return
        send(self, 404, "text/plain", b"The fake serves POST / only.\n")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        params = aws_fake.parse_form(self.rfile.read(length) if length > 0 else b"")
        action = params.get("Action", "")
        activity = self.server.activity
        throttled = activity.start(throttle_allowed=action != "AssumeRole")
        self.server.counter.start(action if action and self.path == "/" else "other")
        status = 500
        try:
            time.sleep(self.server.latency)
            if throttled:
                status, body = 400, aws_fake.THROTTLING.xml("bench-throttled")
            elif self.path != "/":
                status, body = 404, aws_fake.QueryError(404, "NotFound", "POST / only.").xml("bench")
            else:
                authorization = self.headers.get("Authorization", "")
                status, body = aws_fake.respond(self.server.accounts, self.server.sessions, authorization, params)
            send(self, status, "text/xml", body.encode())
        finally:
            self.server.counter.finish(status)
            activity.end()


class AzureHandler(azure_fake.Handler):
    """azure_fake.py's Graph handler, with throttling and activity."""

    def do_GET(self):
        if activity_request(self):
            return
        path = urlsplit(self.path).path
        if path.startswith("/bench/"):
            super().do_GET()
            return
        activity = self.server.activity
        throttled = activity.start(throttle_allowed=path != "/msi/token")
        try:
            if not throttled:
                super().do_GET()
                return
            time.sleep(self.server.latency)
            body = azure_fake.encode({"error": {"code": "TooManyRequests", "message": "Too many requests."}})
            retry_after = [("Retry-After", str(self.server.retry_after))]
            send(self, 429, "application/json", body, retry_after)
        finally:
            activity.end()


class GcpHandler(gcp_fake.Handler):
    """gcp_fake.py's handler, with throttling and activity."""

    def handle_request(self, method):
        if method == "GET" and activity_request(self):
            return
        path = urlsplit(self.path).path
        if path.startswith("/bench/"):
            super().handle_request(method)
            return
        activity = self.server.activity
        throttled = activity.start(throttle_allowed=path != "/token")
        try:
            if not throttled:
                super().handle_request(method)
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > 0:
                self.rfile.read(length)
            time.sleep(self.server.latency)
            error = {"code": 429, "message": "Quota exceeded for quota metric 'Read requests'.", "status": "RESOURCE_EXHAUSTED"}
            send(self, 429, "application/json; charset=UTF-8", gcp_fake.encode({"error": error}))
        finally:
            activity.end()


def build_servers(args):
    """Return each chosen provider's server, listening and ready to serve."""
    servers = {}
    for index, provider in enumerate(args.providers):
        started = time.monotonic()
        if provider == "aws":
            server = Server(("127.0.0.1", 0), AwsHandler)
            server.accounts = aws_fake.Accounts(args.aws_accounts, args.aws_users, args.aws_roles, args.aws_page_size_cap)
            server.sessions = aws_fake.Sessions()
            # gcp_fake.py's counter; its non_200 includes each NoSuchEntity of GetLoginProfile.
            server.counter = gcp_fake.Counter()
            server.latency = args.latency_ms / 1000
            what = f"{args.aws_accounts} AWS accounts of {args.aws_users} users and {args.aws_roles} roles"
        elif provider == "azure":
            tenant = azure_fake.Tenant(args.azure_users, args.azure_service_principals, args.azure_applications)
            server = Server(("127.0.0.1", 0), AzureHandler)
            azure_fake.configure(server, tenant, args.latency_ms, args.azure_page_size_cap)
            server.retry_after = args.retry_after_seconds
            what = (
                f"an Entra tenant of {args.azure_users} users, {args.azure_service_principals} service "
                f"principals and {args.azure_applications} applications"
            )
        else:
            projects = [gcp_fake.Project(n, args.gcp_accounts, 1, 1) for n in range(1, args.gcp_projects + 1)]
            server = Server(("127.0.0.1", 0), GcpHandler)
            gcp_fake.configure(server, projects, args.latency_ms)
            what = f"{args.gcp_projects} Google Cloud projects of {args.gcp_accounts} service accounts"
        server.activity = Activity(args.throttle_rate, args.throttle_seed + index)
        servers[provider] = server
        print(
            f"fake {provider} on http://127.0.0.1:{server.server_address[1]}: {what}, "
            f"generated in {time.monotonic() - started:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return servers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True, help="file to write the ports to, as JSON")
    parser.add_argument("--providers", default="aws,azure,gcp", help="providers to serve, comma-separated (default all three)")
    parser.add_argument("--latency-ms", type=float, default=50, help="wait before each response, in milliseconds (default 50)")
    parser.add_argument("--throttle-rate", type=float, default=0, help="fraction of API requests throttled, 0 to 1 (default 0)")
    parser.add_argument("--throttle-seed", type=int, default=1, help="seed of the throttling draws (default 1)")
    parser.add_argument("--retry-after-seconds", type=int, default=1, help="Retry-After of Graph's 429 (default 1)")
    parser.add_argument("--aws-accounts", type=int, default=100)
    parser.add_argument("--aws-users", type=int, default=500)
    parser.add_argument("--aws-roles", type=int, default=500)
    parser.add_argument("--aws-page-size-cap", type=int, default=1000, help="maximum entities per authorization details page (default 1000)")
    parser.add_argument("--azure-users", type=int, default=100_000)
    parser.add_argument("--azure-service-principals", type=int, default=20_000)
    parser.add_argument("--azure-applications", type=int, default=5_000)
    parser.add_argument("--azure-page-size-cap", type=int, default=999, help="maximum records per Graph page (default 999)")
    parser.add_argument("--gcp-projects", type=int, default=200)
    parser.add_argument("--gcp-accounts", type=int, default=50)
    args = parser.parse_args()
    args.providers = [name.strip() for name in args.providers.split(",") if name.strip()]
    if not args.providers or any(name not in PROVIDERS for name in args.providers):
        parser.error(f"--providers takes names from {', '.join(PROVIDERS)}")
    if not 0 <= args.throttle_rate <= 1:
        parser.error("--throttle-rate must be 0 to 1")
    if not 1 <= args.aws_accounts <= 9999 or not 1 <= args.aws_page_size_cap <= 1000:
        parser.error("--aws-accounts must be 1 to 9999 and --aws-page-size-cap 1 to 1000")
    if not 1 <= args.gcp_projects <= 999 or not 1 <= args.gcp_accounts <= 999:
        parser.error("--gcp-projects and --gcp-accounts must be 1 to 999")

    servers = build_servers(args)
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers.values()]
    for thread in threads:
        thread.start()

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    temporary = f"{args.port_file}.tmp"
    with open(temporary, "w") as file:
        json.dump({name: server.server_address[1] for name, server in servers.items()}, file)
    os.replace(temporary, args.port_file)
    print(
        f"fake cloud ready: latency {args.latency_ms:g} ms, throttle rate {args.throttle_rate:g}",
        file=sys.stderr,
        flush=True,
    )
    while not stopping.wait(1):
        pass
    for server in servers.values():
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
