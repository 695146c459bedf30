"""Seed a moto IAM endpoint with the benchmark account.

Creates USERS users named bench-user-NNNN, each with one access key, and
ROLES roles named bench-role-NNNN, then lists them back and exits non-zero
when a count differs. Credentials and region come from the environment,
which bench/run.sh sets to dummy values.
"""

import argparse
import json
import sys
import time

import boto3

ASSUME_ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--endpoint-url", required=True, help="moto URL, such as http://127.0.0.1:5000"
    )
    parser.add_argument("--users", type=int, default=1000, help="users to create")
    parser.add_argument("--roles", type=int, default=1000, help="roles to create")
    return parser.parse_args()


def count_listed(iam, operation, key):
    """Count the entities a paginated IAM listing returns."""
    paginator = iam.get_paginator(operation)
    return sum(len(page[key]) for page in paginator.paginate())


def main():
    args = parse_args()
    iam = boto3.client("iam", endpoint_url=args.endpoint_url)
    started = time.monotonic()
    calls = 0

    for index in range(args.users):
        name = f"bench-user-{index:04d}"
        iam.create_user(UserName=name)
        iam.create_access_key(UserName=name)
        calls += 2

    for index in range(args.roles):
        iam.create_role(
            RoleName=f"bench-role-{index:04d}",
            AssumeRolePolicyDocument=ASSUME_ROLE_POLICY,
        )
        calls += 1

    elapsed = time.monotonic() - started
    users = count_listed(iam, "list_users", "Users")
    roles = count_listed(iam, "list_roles", "Roles")
    print(
        f"seeded {users} users (one access key each) and {roles} roles "
        f"with {calls} calls in {elapsed:.1f} s"
    )
    if users != args.users or roles != args.roles:
        print(
            f"seed failed: expected {args.users} users and {args.roles} roles; "
            "start from an empty moto server",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
