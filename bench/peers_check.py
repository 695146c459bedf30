"""Count requests and check collections for bench/peers_run.sh.

Subcommands:

  requests RECORDING FIRST LAST
      Count the requests in lines FIRST..LAST-1 (0-based) of a moto recording
      (moto's recorder writes one JSON line per request it receives), per
      service and operation. Prints JSON.

  inventory TOOL PATH --users N --roles N [--expected-keys FILE]
      Read what TOOL (idrift, boto3 or prowler) wrote at PATH and count the
      benchmark users (bench-user-NNNN), roles (bench-role-NNNN) and access
      keys in it. When FILE (a boto3_iam.py inventory) is given, also compare
      the access key ids with it; Prowler's output contains no key ids, so its
      keys are counted from the credential report rows in its findings.
      Prints JSON with "complete": true when every user, role and key is
      there.

  summary RUNS_TSV
      Print a Markdown table of the median and range of each tool's timed
      runs in RUNS_TSV, the table bench/peers_run.sh appends one row to per
      run.
"""

import argparse
import base64
import json
import re
import statistics
import sys
from collections import Counter
from urllib.parse import parse_qs

# Credential scope of a SigV4 Authorization header: KEY/DATE/REGION/SERVICE/aws4_request.
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")


def operation_of(entry):
    """Return "service:Operation" for one recorded request."""
    headers = {name.lower(): value for name, value in entry.get("headers", {}).items()}
    scope = CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
    service = scope.group(1) if scope else "unsigned"
    target = headers.get("x-amz-target")
    if target:
        # JSON protocols (Organizations, for one) name the operation in a header.
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    action = parse_qs(body).get("Action")
    if action:
        return f"{service}:{action[0]}"
    return f"{service}:{entry.get('method', '?')} {entry.get('url', '?')}"


def count_requests(recording, first, last):
    operations = Counter()
    with open(recording, encoding="utf-8") as file:
        for index, line in enumerate(file):
            if index >= last:
                break
            if index >= first:
                operations[operation_of(json.loads(line))] += 1
    return {"total": sum(operations.values()), "by_operation": dict(sorted(operations.items()))}


def idrift_inventory(path):
    """Return user names, role names and key ids from an idrift snapshot."""
    with open(path, encoding="utf-8") as file:
        snapshot = json.load(file)
    users, roles, keys = set(), set(), []
    for identity in snapshot["identities"]:
        if identity["kind"] == "aws_user":
            users.add(identity["name"])
            keys.extend(
                credential["id"]
                for credential in identity.get("credentials", [])
                if credential["kind"] == "access_key"
            )
        elif identity["kind"] == "aws_role":
            roles.add(identity["name"])
    incomplete = sorted(
        name
        for name, state in snapshot.get("collections", {}).items()
        if state.get("status") != "complete"
    )
    return users, roles, keys, incomplete


def boto3_inventory(path):
    """Return user names, role names and key ids from a boto3_iam.py inventory."""
    with open(path, encoding="utf-8") as file:
        inventory = json.load(file)
    users = {user["name"] for user in inventory["users"]}
    roles = {role["name"] for role in inventory["roles"]}
    keys = [key["access_key_id"] for user in inventory["users"] for key in user["access_keys"]]
    return users, roles, keys


def prowler_inventory(path):
    """Return user names, role names and active-key count from Prowler's OCSF findings.

    Users and roles are the resources its findings name. Keys come from the
    credential report rows (access_key_1_active, access_key_2_active) that
    its credential report checks attach to each user's findings.
    """
    with open(path, encoding="utf-8") as file:
        findings = json.load(file)
    users, roles = set(), set()
    active_keys = {}
    for finding in findings:
        for resource in finding.get("resources", []):
            uid = resource.get("uid", "")
            if resource.get("type") == "AwsIamUser" and ":user/" in uid:
                users.add(uid.rsplit("/", 1)[-1])
            elif resource.get("type") == "AwsIamRole" and ":role/" in uid:
                roles.add(uid.rsplit("/", 1)[-1])
            metadata = (resource.get("data") or {}).get("metadata") or {}
            if isinstance(metadata, dict) and "access_key_1_active" in metadata:
                count = sum(
                    metadata.get(f"access_key_{slot}_active") == "true" for slot in (1, 2)
                )
                active_keys[metadata.get("user")] = count
    return users, roles, active_keys


def check_inventory(args):
    expected_users = {f"bench-user-{index:04d}" for index in range(args.users)}
    expected_roles = {f"bench-role-{index:04d}" for index in range(args.roles)}
    result = {"tool": args.tool}
    key_ids = None
    if args.tool == "idrift":
        users, roles, key_ids, incomplete = idrift_inventory(args.path)
        result["incomplete_collections"] = incomplete
    elif args.tool == "boto3":
        users, roles, key_ids = boto3_inventory(args.path)
    else:
        users, roles, active_keys = prowler_inventory(args.path)
        keys = sum(count for user, count in active_keys.items() if user in expected_users)
        result["access_keys_source"] = "credential report rows in findings (no key ids)"

    result["users"] = len(users & expected_users)
    result["roles"] = len(roles & expected_roles)
    if key_ids is not None:
        keys = len(set(key_ids))
    result["access_keys"] = keys
    complete = (
        result["users"] == args.users and result["roles"] == args.roles and keys == args.users
    )
    if key_ids is not None and args.expected_keys:
        _, _, expected_ids = boto3_inventory(args.expected_keys)
        result["key_ids_match"] = sorted(set(key_ids)) == sorted(set(expected_ids))
        complete = complete and result["key_ids_match"]
    if result.get("incomplete_collections"):
        complete = False
    result["complete"] = complete
    return result


def describe(values, unit, digits):
    """Return "median (min to max) unit" for a list of numbers."""
    median = statistics.median(values)
    low, high = min(values), max(values)
    if low == high:
        return f"{median:,.{digits}f} {unit}".strip()
    return f"{median:,.{digits}f} ({low:,.{digits}f} to {high:,.{digits}f}) {unit}".strip()


def summarize(path):
    """Return a Markdown table with one row per tool, over its timed runs."""
    with open(path, encoding="utf-8") as file:
        header = file.readline().rstrip("\n").split("\t")
        rows = [dict(zip(header, line.rstrip("\n").split("\t"))) for line in file if line.strip()]
    tools = []
    for row in rows:
        if row["round"] != "audit" and row["tool"] not in tools:
            tools.append(row["tool"])
    lines = [
        "| tool | runs | wall time, median (range) | CPU time (user + sys) | peak memory (max RSS) "
        "| requests moto received | non-2xx responses | tool's own count | complete (users/roles/keys) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for tool in tools:
        runs = [row for row in rows if row["tool"] == tool and row["round"] != "audit"]
        complete = sum(row["complete"] == "true" for row in runs)
        counts = sorted({row["tool_count"] for row in runs})
        seen = sorted({f"{row['users']}/{row['roles']}/{row['keys']}" for row in runs})
        lines.append(
            f"| {tool} | {len(runs)} "
            f"| {describe([float(row['wall_s']) for row in runs], 's', 2)} "
            f"| {describe([float(row['cpu_s']) for row in runs], 's', 2)} "
            f"| {describe([float(row['rss_mib']) for row in runs], 'MiB', 1)} "
            f"| {describe([int(row['requests']) for row in runs], '', 0)} "
            f"| {describe([int(row['errors']) for row in runs], '', 0)} "
            f"| {', '.join(counts)} "
            f"| {complete} of {len(runs)} ({', '.join(seen)}) |"
        )
    return "\n".join(lines)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    requests = commands.add_parser("requests", help="count recorded requests per operation")
    requests.add_argument("recording")
    requests.add_argument("first", type=int)
    requests.add_argument("last", type=int)
    inventory = commands.add_parser("inventory", help="check one tool's collection")
    inventory.add_argument("tool", choices=["idrift", "boto3", "prowler"])
    inventory.add_argument("path")
    inventory.add_argument("--users", type=int, required=True)
    inventory.add_argument("--roles", type=int, required=True)
    inventory.add_argument("--expected-keys", help="boto3_iam.py inventory to compare key ids with")
    summary = commands.add_parser("summary", help="tabulate the timed runs")
    summary.add_argument("runs")
    return parser.parse_args()


def main():
    args = parse_args()
    if args.command == "summary":
        print(summarize(args.runs))
        return 0
    if args.command == "requests":
        result = count_requests(args.recording, args.first, args.last)
    else:
        result = check_inventory(args)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
