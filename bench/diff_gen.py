#!/usr/bin/env python3
"""Generate two snapshot trees of AWS IAM users for benchmarking `idrift diff`.

The old tree contains IDENTITIES users spread evenly over SCOPES accounts, each
with one access key. Every 4th user also has a console password, and every
1,000th is in the `admins` group, which grants AdministratorAccess. The new
tree is the old one with ADDED users created, REMOVED users deleted, a second
access key on NEW_KEYS users and an attached AdministratorAccess policy on
NEW_GRANTS users. Those four sets are disjoint, so `idrift diff OLD NEW` must
report exactly that many identity_added, identity_removed, credential_added
and privilege_added findings, and nothing else.

The files follow idrift's snapshot format (src/model.rs) byte for byte:
serde_json's pretty printing with two-space indents, fields in struct order,
empty fields left out, identities sorted by id and a final newline. The same
seed gives the same bytes.

Writes OUT/old/aws/<account>.json, OUT/new/aws/<account>.json and
OUT/expected.json (the generated counts, for the runner's checks).
"""

import argparse
import hashlib
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
FIRST_ACCOUNT = 100000000000
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
COLLECTIONS = ["users", "roles", "privileges", "access_keys", "console_passwords"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--identities", type=int, default=1_000_000, help="users in the old tree")
    parser.add_argument("--scopes", type=int, default=200, help="AWS accounts to spread them over")
    parser.add_argument("--added", type=int, default=1000, help="users only in the new tree")
    parser.add_argument("--removed", type=int, default=1000, help="users only in the old tree")
    parser.add_argument("--new-keys", type=int, default=1000, help="users given a second access key")
    parser.add_argument("--new-grants", type=int, default=100, help="users given AdministratorAccess")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    args = parser.parse_args()
    if args.identities % args.scopes != 0:
        parser.error(f"--identities {args.identities} is not a multiple of --scopes {args.scopes}")
    if args.removed + args.new_keys + args.new_grants > args.identities:
        parser.error("--removed, --new-keys and --new-grants together exceed --identities")
    return args


def token(seed, label, number, length):
    """Return `length` base32 characters derived from the seed, a label and a number."""
    digest = hashlib.blake2b(f"{seed}:{label}:{number}".encode(), digest_size=16).digest()
    value = int.from_bytes(digest, "big")
    chars = []
    for _ in range(length):
        chars.append(BASE32[value & 31])
        value >>= 5
    return "".join(chars)


def timestamp(seconds):
    return (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_list_item(fields):
    """Render a credential or admin grant object of string fields, at its indent in the file."""
    lines = [f'          "{key}": "{value}"' for key, value in fields]
    return "        {\n" + ",\n".join(lines) + "\n        }"


def render_user(seed, number, account, second_key, new_grant):
    """Render one aws_user record as idrift writes it, at its indent in the file."""
    user_id = "AIDA" + token(seed, "user", number, 17)
    name = f"user-{number:07d}"
    created = 3600 * number % (5 * 365 * 86400)
    admin_by_group = number % 1000 == 0
    groups = ["admins"] if admin_by_group else []
    groups.append(f"team-{number % 50:02d}")

    keys = [(token(seed, "key", number, 16), created + 300)]
    if second_key:
        keys.append((token(seed, "key2", number, 16), created + 86400))
    keys.sort()
    credentials = [
        render_list_item(
            [("kind", "access_key"), ("id", "AKIA" + key_id), ("status", "Active"), ("created", timestamp(when))]
        )
        for key_id, when in keys
    ]
    if number % 4 == 0:
        credentials.append(
            render_list_item(
                [("kind", "console_password"), ("id", "console-password"), ("created", timestamp(created + 60))]
            )
        )

    grants = []
    if new_grant:
        grants.append(
            render_list_item([("via", "attached"), ("policy", ADMIN_POLICY), ("reason", "AdministratorAccess")])
        )
    if admin_by_group:
        grants.append(
            render_list_item(
                [
                    ("via", "group_attached"),
                    ("policy", ADMIN_POLICY),
                    ("group", "admins"),
                    ("reason", "AdministratorAccess"),
                ]
            )
        )

    parts = [
        f'      "id": "{user_id}"',
        '      "kind": "aws_user"',
        f'      "name": "{name}"',
        '      "path": "/"',
        f'      "arn": "arn:aws:iam::{account}:user/{name}"',
        f'      "created": "{timestamp(created)}"',
        '      "groups": [\n' + ",\n".join(f'        "{group}"' for group in groups) + "\n      ]",
        '      "credentials": [\n' + ",\n".join(credentials) + "\n      ]",
    ]
    if grants:
        parts.append('      "admin_grants": [\n' + ",\n".join(grants) + "\n      ]")
    return user_id, "    {\n" + ",\n".join(parts) + "\n    }"


def render_snapshot(account, records):
    collections = ",\n".join(f'    "{name}": {{\n      "status": "complete"\n    }}' for name in COLLECTIONS)
    records.sort()
    body = ",\n".join(text for _, text in records)
    return (
        "{\n"
        '  "format_version": 1,\n'
        '  "provider": "aws",\n'
        f'  "scope": "{account}",\n'
        f'  "collections": {{\n{collections}\n  }},\n'
        f'  "identities": [\n{body}\n  ]\n'
        "}\n"
    )


def write_tree(folder, snapshots):
    aws = folder / "aws"
    aws.mkdir(parents=True, exist_ok=True)
    total = 0
    for account, records in snapshots.items():
        text = render_snapshot(account, records)
        (aws / f"{account}.json").write_text(text)
        total += len(text)
    return total


def check_canonical(path):
    """Fail unless the file is exactly the two-space pretty JSON that serde_json writes."""
    text = path.read_text()
    value = json.loads(text)
    if json.dumps(value, indent=2) + "\n" != text:
        sys.exit(f"diff_gen: {path} is not canonical pretty-printed JSON")
    ids = [identity["id"] for identity in value["identities"]]
    if ids != sorted(ids) or len(ids) != len(set(ids)):
        sys.exit(f"diff_gen: identities in {path} are not sorted by id or have duplicate ids")


def main():
    args = parse_args()
    rng = random.Random(args.seed)
    per_scope = args.identities // args.scopes
    accounts = [str(FIRST_ACCOUNT + scope) for scope in range(args.scopes)]

    # Disjoint sets of old users: deleted, given a second key, made admin.
    changed = rng.sample(range(args.identities), args.removed + args.new_keys + args.new_grants)
    removed = set(changed[: args.removed])
    new_keys = set(changed[args.removed : args.removed + args.new_keys])
    new_grants = set(changed[args.removed + args.new_keys :])

    old = {account: [] for account in accounts}
    new = {account: [] for account in accounts}
    for number in range(args.identities):
        account = accounts[number // per_scope]
        record = render_user(args.seed, number, account, False, False)
        old[account].append(record)
        if number in removed:
            continue
        if number in new_keys or number in new_grants:
            record = render_user(args.seed, number, account, number in new_keys, number in new_grants)
        new[account].append(record)
    # Users numbered past the old ones, dealt round-robin over the accounts,
    # so no new name matches a removed one (idrift would report a re-creation).
    for offset in range(args.added):
        number = args.identities + offset
        account = accounts[offset % args.scopes]
        new[account].append(render_user(args.seed, number, account, False, False))

    old_bytes = write_tree(args.out / "old", old)
    new_bytes = write_tree(args.out / "new", new)
    # Parsing a whole file in Python takes about 10 times its size in memory,
    # so only files of up to 100,000 users are checked.
    if per_scope <= 100_000:
        check_canonical(args.out / "old" / "aws" / f"{accounts[0]}.json")
        check_canonical(args.out / "new" / "aws" / f"{accounts[0]}.json")

    expected = {
        "scopes": args.scopes,
        "old_identities": args.identities,
        "new_identities": args.identities - args.removed + args.added,
        "old_bytes": old_bytes,
        "new_bytes": new_bytes,
        "findings": {
            "identity_added": args.added,
            "identity_removed": args.removed,
            "credential_added": args.new_keys,
            "privilege_added": args.new_grants,
        },
        "seed": args.seed,
    }
    (args.out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(json.dumps(expected))


if __name__ == "__main__":
    main()
