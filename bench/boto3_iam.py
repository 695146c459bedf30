"""Collect an IAM inventory with boto3, the way idrift's AWS collector does.

The baseline script for bench/peers_run.sh: one paginated
GetAccountAuthorizationDetails listing (1,000 items a page), then
ListAccessKeys and GetLoginProfile for each user, either one user at a time
or WORKERS users at a time from a thread pool sharing one client. Writes a
JSON inventory of users (with access keys and whether a console password
exists) and roles, and prints a one-line JSON summary with the counts and the
HTTP requests botocore sent, retries included.

Credentials, region and endpoint come from the environment (bench/lib.sh
sets dummy credentials and AWS_ENDPOINT_URL), so the script itself names no
host.
"""

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore
from botocore.config import Config

PAGE_SIZE = 1000


class RequestCounter:
    """Count the HTTP requests a client sends, per operation, retries included."""

    def __init__(self):
        self._lock = threading.Lock()
        self.by_operation = {}

    def attach(self, client):
        # "before-send" fires once per HTTP attempt, so retries are counted too.
        client.meta.events.register("before-send.iam.*", self._on_send)

    def _on_send(self, request, **kwargs):
        operation = kwargs.get("event_name", "").rsplit(".", 1)[-1]
        with self._lock:
            self.by_operation[operation] = self.by_operation.get(operation, 0) + 1

    def total(self):
        return sum(self.by_operation.values())


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="path of the JSON inventory to write")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="users whose keys and login profile are read at once (1: sequential)",
    )
    return parser.parse_args()


def read_authorization_details(iam):
    """Return every user and role from GetAccountAuthorizationDetails."""
    users, roles = [], []
    paginator = iam.get_paginator("get_account_authorization_details")
    for page in paginator.paginate(PaginationConfig={"PageSize": PAGE_SIZE}):
        users.extend(page.get("UserDetailList", []))
        roles.extend(page.get("RoleDetailList", []))
    return users, roles


def read_user_credentials(iam, user_name):
    """Return a user's access keys and whether the user has a console password."""
    keys = []
    for page in iam.get_paginator("list_access_keys").paginate(UserName=user_name):
        for key in page["AccessKeyMetadata"]:
            keys.append(
                {
                    "access_key_id": key["AccessKeyId"],
                    "status": key["Status"],
                    "created": key["CreateDate"].isoformat(),
                }
            )
    try:
        iam.get_login_profile(UserName=user_name)
        has_password = True
    except iam.exceptions.NoSuchEntityException:
        has_password = False
    return keys, has_password


def build_inventory(iam, workers):
    """Collect users with their credentials, and roles, into one dictionary."""
    users, roles = read_authorization_details(iam)
    names = [user["UserName"] for user in users]
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            credentials = list(pool.map(lambda name: read_user_credentials(iam, name), names))
    else:
        credentials = [read_user_credentials(iam, name) for name in names]

    inventory_users = []
    for user, (keys, has_password) in zip(users, credentials):
        inventory_users.append(
            {
                "id": user["UserId"],
                "name": user["UserName"],
                "arn": user["Arn"],
                "access_keys": keys,
                "console_password": has_password,
            }
        )
    inventory_roles = [
        {
            "id": role["RoleId"],
            "name": role["RoleName"],
            "arn": role["Arn"],
            "trust_policy": role.get("AssumeRolePolicyDocument"),
        }
        for role in roles
    ]
    return {"users": inventory_users, "roles": inventory_roles}


def main():
    args = parse_args()
    if args.workers < 1:
        print("--workers must be 1 or more", file=sys.stderr)
        return 2
    # The connection pool must be at least as large as the thread pool, or
    # threads wait for a connection. botocore's default pool has 10 connections.
    config = Config(max_pool_connections=max(10, args.workers))
    iam = boto3.client("iam", config=config)
    counter = RequestCounter()
    counter.attach(iam)

    started = time.monotonic()
    inventory = build_inventory(iam, args.workers)
    elapsed = time.monotonic() - started

    with open(args.output, "w", encoding="utf-8") as file:
        json.dump(inventory, file, indent=2, sort_keys=True)
        file.write("\n")
    summary = {
        "users": len(inventory["users"]),
        "roles": len(inventory["roles"]),
        "access_keys": sum(len(user["access_keys"]) for user in inventory["users"]),
        "workers": args.workers,
        "requests": counter.total(),
        "requests_by_operation": dict(sorted(counter.by_operation.items())),
        "collection_seconds": round(elapsed, 2),
        "boto3": boto3.__version__,
        "botocore": botocore.__version__,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
