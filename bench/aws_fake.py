"""Generated AWS accounts over a fake IAM and STS Query API, for bench/cloud_fake.py.

The handler speaks the Query protocol the AWS SDKs use: `POST /` with a form
body `Action=<Op>&Version=...&<params>`. The response is
`<{Op}Response><{Op}Result>...` XML, or with an `<ErrorResponse>` and the
status IAM uses for that error. It serves:

- STS `AssumeRole` of `arn:aws:iam::<account>:role/<any name>`, for the
  bench's static credentials only. The session's access key id names the
  account, so every later request tells the fake which account it reads;
- STS `GetCallerIdentity`, which returns that account;
- IAM `GetAccountAuthorizationDetails`, paged by `MaxItems` (capped by
  --aws-page-size-cap) and an opaque `Marker`;
- IAM `ListAccessKeys` and `GetLoginProfile` for one user, which returns
  404 `NoSuchEntity` for a user without a console password, as IAM does.

Request signatures are not checked, but a request signed with an access key
that the fake did not issue gets 403 `InvalidClientTokenId`.

Each account `1000000000NN` has --aws-users users and --aws-roles roles.
Every user has one access key, every 4th user a console password, and user
1 the AWS managed AdministratorAccess policy. Every role trusts EC2, except
role 1, which trusts account 999999999999. The data is generated from the
counts alone, so two runs serve identical accounts.
"""

import threading
import time
import uuid
from urllib.parse import parse_qsl, quote

# The static credentials that bench/cloud_run.sh gives idrift. Only these may
# call AssumeRole.
BASE_ACCESS_KEY_ID = "AKIAIDRIFTBENCH00000"
BASE_SECRET_ACCESS_KEY = "idrift-bench-secret-not-real"
SESSION_KEY_PREFIX = "ASIABENCH"
SESSION_LIFETIME_SECONDS = 3600
OUTSIDE_ACCOUNT = "999999999999"

IAM_NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"
STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
CREATED = "2024-01-02T03:04:05Z"
KEY_CREATED = "2024-02-03T04:05:06Z"
PASSWORD_CREATED = "2024-03-04T05:06:07Z"
ADMINISTRATOR_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"
DEFAULT_MAX_ITEMS = 100  # IAM's page size when a request has no MaxItems
FIRST_ACCOUNT = 100_000_000_001


def account_id(number):
    """Return account `number`'s 12-digit id, numbering from 1."""
    return str(FIRST_ACCOUNT + number - 1)


def trust_policy(trusted):
    """Return a trust policy document, URL-encoded as IAM sends documents."""
    principal = f'{{"AWS":"arn:aws:iam::{trusted}:root"}}' if trusted else '{"Service":"ec2.amazonaws.com"}'
    document = f'{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":"sts:AssumeRole"}}]}}'
    return quote(document, safe="-._~")


def member_list(name, members):
    if not members:
        return f"<{name}/>"
    return f"<{name}>" + "".join(f"<member>{member}</member>" for member in members) + f"</{name}>"


class Accounts:
    """The generated accounts, whose data is computed from their numbers."""

    def __init__(self, accounts, users, roles, page_size_cap):
        self.ids = {account_id(n): n for n in range(1, accounts + 1)}
        self.users = users
        self.roles = roles
        self.page_size_cap = page_size_cap
        self.ec2_trust = trust_policy(None)
        self.outside_trust = trust_policy(OUTSIDE_ACCOUNT)

    def entity(self, account, number, index):
        """Return the XML of entity `index` (users first, then roles) and its list."""
        if index < self.users:
            user = index + 1
            attached = [ADMINISTRATOR_ACCESS] if user == 1 else []
            policies = member_list(
                "AttachedManagedPolicies",
                [f"<PolicyName>{arn.rsplit('/', 1)[1]}</PolicyName><PolicyArn>{arn}</PolicyArn>" for arn in attached],
            )
            name = f"user-{user:05d}"
            return "UserDetailList", (
                f"<Path>/</Path><UserName>{name}</UserName><UserId>AIDABENCH{number:04d}{user:06d}</UserId>"
                f"<Arn>arn:aws:iam::{account}:user/{name}</Arn><CreateDate>{CREATED}</CreateDate>"
                f"<GroupList/>{policies}<UserPolicyList/>"
            )
        role = index - self.users + 1
        name = f"role-{role:05d}"
        trust = self.outside_trust if role == 1 else self.ec2_trust
        return "RoleDetailList", (
            f"<Path>/</Path><RoleName>{name}</RoleName><RoleId>AROABENCH{number:04d}{role:06d}</RoleId>"
            f"<Arn>arn:aws:iam::{account}:role/{name}</Arn><CreateDate>{CREATED}</CreateDate>"
            f"<AssumeRolePolicyDocument>{trust}</AssumeRolePolicyDocument><InstanceProfileList/>"
            f"<RolePolicyList/><AttachedManagedPolicies/>"
        )

    def details_page(self, account, params):
        """Return the result XML of one GetAccountAuthorizationDetails page."""
        number = self.ids[account]
        try:
            max_items = int(params.get("MaxItems", DEFAULT_MAX_ITEMS))
            marker = params.get("Marker")
            offset = int(marker.removeprefix("bench/")) if marker else 0
        except ValueError:
            raise QueryError(400, "InvalidInput", "Invalid MaxItems or Marker.")
        total = self.users + self.roles
        if not 1 <= max_items <= 1000 or not 0 <= offset <= total:
            raise QueryError(400, "InvalidInput", "Invalid MaxItems or Marker.")
        end = min(offset + min(max_items, self.page_size_cap), total)
        lists = {"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": [], "Policies": []}
        for index in range(offset, end):
            name, xml = self.entity(account, number, index)
            lists[name].append(xml)
        result = "".join(member_list(name, members) for name, members in lists.items())
        if end < total:
            return result + f"<IsTruncated>true</IsTruncated><Marker>bench/{end}</Marker>"
        return result + "<IsTruncated>false</IsTruncated>"

    def user_number(self, account, params):
        name = params.get("UserName", "")
        try:
            user = int(name.removeprefix("user-"))
        except ValueError:
            user = 0
        if not name.startswith("user-") or not 1 <= user <= self.users:
            raise QueryError(404, "NoSuchEntity", f"The user with name {name} cannot be found.")
        return self.ids[account], user, name

    def access_keys(self, account, params):
        number, user, name = self.user_number(account, params)
        key = (
            f"<UserName>{name}</UserName><AccessKeyId>AKIABENCH{number:04d}{user:06d}</AccessKeyId>"
            f"<Status>Active</Status><CreateDate>{KEY_CREATED}</CreateDate>"
        )
        return member_list("AccessKeyMetadata", [key]) + "<IsTruncated>false</IsTruncated>"

    def login_profile(self, account, params):
        _, user, name = self.user_number(account, params)
        if user % 4:
            raise QueryError(404, "NoSuchEntity", f"Login Profile for User {name} cannot be found.")
        return (
            f"<LoginProfile><UserName>{name}</UserName><CreateDate>{PASSWORD_CREATED}</CreateDate>"
            f"<PasswordResetRequired>false</PasswordResetRequired></LoginProfile>"
        )


class QueryError(Exception):
    """An error, sent as the Query protocol's ErrorResponse."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def xml(self, request_id):
        return (
            f'<ErrorResponse xmlns="{IAM_NAMESPACE}"><Error><Type>Sender</Type><Code>{self.code}</Code>'
            f"<Message>{self.message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )


THROTTLING = QueryError(400, "Throttling", "Rate exceeded")


def access_key_of(authorization):
    """Return the access key id of a SigV4 Authorization header, or ""."""
    _, _, rest = authorization.partition("Credential=")
    return rest.split("/", 1)[0]


class Sessions:
    """The role sessions the fake issued, by access key id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.accounts = {}
        self.number = 0

    def issue(self, account):
        with self.lock:
            self.number += 1
            key = f"{SESSION_KEY_PREFIX}{account}{self.number:07d}"
            self.accounts[key] = account
        return key

    def account_of(self, authorization):
        with self.lock:
            return self.accounts.get(access_key_of(authorization))


def respond(accounts, sessions, authorization, params):
    """Return the status and XML body of the response to a request."""
    action = params.get("Action", "")
    request_id = str(uuid.uuid4())
    try:
        if action == "AssumeRole":
            return 200, assume_role(accounts, sessions, authorization, params, request_id)
        account = sessions.account_of(authorization)
        if account is None:
            raise QueryError(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
        if action == "GetCallerIdentity":
            result = (
                f"<Arn>arn:aws:sts::{account}:assumed-role/idrift-bench-reader/idrift</Arn>"
                f"<UserId>AROABENCHREADER:idrift</UserId><Account>{account}</Account>"
            )
            return 200, success(action, STS_NAMESPACE, result, request_id)
        handlers = {
            "GetAccountAuthorizationDetails": accounts.details_page,
            "ListAccessKeys": accounts.access_keys,
            "GetLoginProfile": accounts.login_profile,
            # The fake accounts trust no identity provider.
            "ListOpenIDConnectProviders": lambda _account, _params: "<OpenIDConnectProviderList/>",
            "ListSAMLProviders": lambda _account, _params: "<SAMLProviderList/>",
        }
        if action not in handlers:
            return 400, QueryError(400, "InvalidAction", f"The fake does not serve {action!r}.").xml(request_id)
        return 200, success(action, IAM_NAMESPACE, handlers[action](account, params), request_id)
    except QueryError as error:
        return error.status, error.xml(request_id)


def assume_role(accounts, sessions, authorization, params, request_id):
    if access_key_of(authorization) != BASE_ACCESS_KEY_ID:
        raise QueryError(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
    role_arn = params.get("RoleArn", "")
    parts = role_arn.split(":")
    if len(parts) != 6 or parts[4] not in accounts.ids or not parts[5].startswith("role/"):
        raise QueryError(403, "AccessDenied", f"Not authorized to perform sts:AssumeRole on {role_arn}.")
    account = parts[4]
    key = sessions.issue(account)
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + SESSION_LIFETIME_SECONDS))
    session_name = params.get("RoleSessionName", "idrift")
    result = (
        f"<Credentials><AccessKeyId>{key}</AccessKeyId><SecretAccessKey>bench-session-secret</SecretAccessKey>"
        f"<SessionToken>bench-session-token-{key}</SessionToken><Expiration>{expires}</Expiration></Credentials>"
        f"<AssumedRoleUser><AssumedRoleId>AROABENCHREADER:{session_name}</AssumedRoleId>"
        f"<Arn>arn:aws:sts::{account}:assumed-role/{parts[5][5:]}/{session_name}</Arn></AssumedRoleUser>"
    )
    return success("AssumeRole", STS_NAMESPACE, result, request_id)


def success(action, namespace, result, request_id):
    return (
        f'<{action}Response xmlns="{namespace}"><{action}Result>{result}</{action}Result>'
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    )


def parse_form(body):
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
