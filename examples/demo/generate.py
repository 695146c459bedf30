#!/usr/bin/env python3
"""Writes the demo account's day-1 and day-2 AWS CLI exports.

The account 111122223333 is invented. Day 2 differs from day 1 by what an
intruder and an ordinary day would leave behind: a new admin user with a
key, a second key on a deploy user, an admin grant, a role trusting an
outside account, a re-created user, a deleted user and a service-linked
role that AWS created. Run it from anywhere; it rewrites day-1/ and day-2/.
"""

import base64
import copy
import json
from pathlib import Path

ACCOUNT = "111122223333"
HERE = Path(__file__).resolve().parent
ADMIN_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
CSV_HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
    "cert_1_last_rotated,cert_2_active,cert_2_last_rotated"
)


def trust(principal):
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}],
    }


def user(name, user_id, created, groups=(), attached=(), inline=()):
    return {
        "Path": "/",
        "UserName": name,
        "UserId": user_id,
        "Arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
        "CreateDate": created,
        "UserPolicyList": list(inline),
        "GroupList": list(groups),
        "AttachedManagedPolicies": [{"PolicyName": arn.rsplit("/", 1)[1], "PolicyArn": arn} for arn in attached],
        "Tags": [],
    }


def role(name, role_id, created, principal, path="/", attached=()):
    return {
        "Path": path,
        "RoleName": name,
        "RoleId": role_id,
        "Arn": f"arn:aws:iam::{ACCOUNT}:role{path}{name}",
        "CreateDate": created,
        "AssumeRolePolicyDocument": trust(principal),
        "InstanceProfileList": [],
        "RolePolicyList": [],
        "AttachedManagedPolicies": [{"PolicyName": arn.rsplit("/", 1)[1], "PolicyArn": arn} for arn in attached],
        "Tags": [],
    }


def admin_policy_version():
    return {
        "Document": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
        "VersionId": "v1",
        "IsDefaultVersion": True,
        "CreateDate": "2015-02-06T18:39:46+00:00",
    }


def day_one():
    return {
        "UserDetailList": [
            user("alice", "AIDAALICE0000000DEMO1", "2023-01-10T09:00:00+00:00", groups=["admins"]),
            user("bob", "AIDABOB00000000DEMO02", "2023-02-11T10:00:00+00:00", groups=["developers"]),
            user("ci-deploy", "AIDACIDEPLOY000DEMO03", "2023-03-12T11:00:00+00:00"),
            user("old-contractor", "AIDAOLDCONTRACTDEMO04", "2023-04-13T12:00:00+00:00"),
            user("reporting", "AIDAREPORTING00DEMO05", "2023-05-14T13:00:00+00:00"),
        ],
        "GroupDetailList": [
            {
                "Path": "/",
                "GroupName": "admins",
                "GroupId": "AGPAADMINS00000DEMO01",
                "Arn": f"arn:aws:iam::{ACCOUNT}:group/admins",
                "CreateDate": "2023-01-10T09:00:00+00:00",
                "GroupPolicyList": [],
                "AttachedManagedPolicies": [{"PolicyName": "AdministratorAccess", "PolicyArn": ADMIN_ARN}],
            },
            {
                "Path": "/",
                "GroupName": "developers",
                "GroupId": "AGPADEVELOPERSDEMO002",
                "Arn": f"arn:aws:iam::{ACCOUNT}:group/developers",
                "CreateDate": "2023-01-10T09:00:00+00:00",
                "GroupPolicyList": [],
                "AttachedManagedPolicies": [],
            },
        ],
        "RoleDetailList": [
            role("app-server", "AROAAPPSERVER00DEMO01", "2023-06-01T08:00:00+00:00", {"Service": "ec2.amazonaws.com"}),
            role(
                "AWSServiceRoleForSupport",
                "AROASUPPORTSLR0DEMO02",
                "2023-01-01T00:00:00+00:00",
                {"Service": "support.amazonaws.com"},
                path="/aws-service-role/support.amazonaws.com/",
            ),
            role(
                "OrganizationAccountAccessRole",
                "AROAORGACCESS00DEMO03",
                "2023-01-01T00:00:00+00:00",
                {"AWS": "arn:aws:iam::999900001111:root"},
                attached=[ADMIN_ARN],
            ),
        ],
        "Policies": [
            {
                "PolicyName": "AdministratorAccess",
                "PolicyId": "ANPAIWMBCKSKIEE64ZLYK",
                "Arn": ADMIN_ARN,
                "Path": "/",
                "DefaultVersionId": "v1",
                "AttachmentCount": 2,
                "PermissionsBoundaryUsageCount": 0,
                "IsAttachable": True,
                "CreateDate": "2015-02-06T18:39:46+00:00",
                "UpdateDate": "2015-02-06T18:39:46+00:00",
                "PolicyVersionList": [admin_policy_version()],
            }
        ],
    }


def day_two(details):
    details = copy.deepcopy(details)
    users = {entry["UserName"]: entry for entry in details["UserDetailList"]}
    del users["old-contractor"]
    users["reporting"] = user("reporting", "AIDAREPORTINGNEWDEMO6", "2023-07-02T02:10:00+00:00")
    users["bob"]["AttachedManagedPolicies"].append({"PolicyName": "AdministratorAccess", "PolicyArn": ADMIN_ARN})
    backdoor_policy = {
        "PolicyName": "maintenance",
        "PolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
    }
    users["svc-backup"] = user("svc-backup", "AIDASVCBACKUP00DEMO07", "2023-07-02T02:14:00+00:00", inline=[backdoor_policy])
    details["UserDetailList"] = sorted(users.values(), key=lambda entry: entry["UserName"])
    details["RoleDetailList"].append(
        role("vendor-audit", "AROAVENDORAUDITDEMO04", "2023-07-02T02:20:00+00:00", {"AWS": "arn:aws:iam::444455556666:root"})
    )
    details["RoleDetailList"].append(
        role(
            "AWSServiceRoleForAutoScaling",
            "AROAAUTOSCALINGDEMO05",
            "2023-07-02T06:00:00+00:00",
            {"Service": "autoscaling.amazonaws.com"},
            path="/aws-service-role/autoscaling.amazonaws.com/",
        )
    )
    return details


DAY_ONE_KEYS = {
    "alice": [("AKIAALICE000DEMO0001", "Active", "2023-01-10T09:05:00+00:00")],
    "ci-deploy": [("AKIACIDEPLOY0DEMO001", "Active", "2023-03-12T11:05:00+00:00")],
    "old-contractor": [("AKIAOLDCONTRDEMO0001", "Inactive", "2023-04-13T12:05:00+00:00")],
}
DAY_TWO_KEYS = {
    "alice": DAY_ONE_KEYS["alice"],
    "ci-deploy": DAY_ONE_KEYS["ci-deploy"] + [("AKIACIDEPLOY0DEMO002", "Active", "2023-07-02T02:30:00+00:00")],
    "svc-backup": [("AKIASVCBACKUPDEMO001", "Active", "2023-07-02T02:15:00+00:00")],
}
PASSWORDS = {"alice": "2023-01-10T09:01:00+00:00", "bob": "2023-02-11T10:01:00+00:00"}


def credential_report(details, keys, generated):
    rows = [CSV_HEADER]
    for entry in details["UserDetailList"]:
        name = entry["UserName"]
        password = PASSWORDS.get(name)
        slots = []
        for slot in range(2):
            user_keys = keys.get(name, [])
            if slot < len(user_keys):
                _, status, created = user_keys[slot]
                slots.append(("true" if status == "Active" else "false", created))
            else:
                slots.append(("false", "N/A"))
        fields = [
            name,
            entry["Arn"],
            entry["CreateDate"],
            "true" if password else "false",
            "N/A",
            password or "N/A",
            "N/A",
            "false",
            slots[0][0], slots[0][1], "N/A", "N/A", "N/A",
            slots[1][0], slots[1][1], "N/A", "N/A", "N/A",
            "false", "N/A", "false", "N/A",
        ]
        rows.append(",".join(fields))
    content = base64.b64encode("\n".join(rows).encode()).decode()
    return {"Content": content, "ReportFormat": "text/csv", "GeneratedTime": generated}


def key_listing(name, keys):
    return {
        "AccessKeyMetadata": [
            {"UserName": name, "AccessKeyId": key_id, "Status": status, "CreateDate": created}
            for key_id, status, created in keys
        ]
    }


def write_day(folder, details, keys, generated):
    account_folder = HERE / folder / "aws" / ACCOUNT
    account_folder.mkdir(parents=True, exist_ok=True)
    for old in account_folder.glob("*.json"):
        old.unlink()
    files = {
        "get-account-authorization-details.json": details,
        "get-credential-report.json": credential_report(details, keys, generated),
        # The demo account trusts no outside identity provider.
        "list-open-id-connect-providers.json": {"OpenIDConnectProviderList": []},
        "list-saml-providers.json": {"SAMLProviderList": []},
    }
    for name, user_keys in keys.items():
        files[f"list-access-keys-{name}.json"] = key_listing(name, user_keys)
    for name, content in files.items():
        (account_folder / name).write_text(json.dumps(content, indent=4, sort_keys=True) + "\n")


def main():
    first = day_one()
    write_day("day-1", first, DAY_ONE_KEYS, "2023-07-01T06:00:00+00:00")
    write_day("day-2", day_two(first), DAY_TWO_KEYS, "2023-07-02T06:00:00+00:00")


if __name__ == "__main__":
    main()
