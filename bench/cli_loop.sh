#!/usr/bin/env bash
# The script a user would write instead of idrift: one AWS CLI call for the
# authorization details, then one `aws iam list-access-keys` per user.
#
# Usage: cli_loop.sh ENDPOINT_URL OUTPUT_DIR [MAX_USERS]
# MAX_USERS limits the loop to the first N users (0, the default, means all).
# Prints the number of AWS CLI calls it made. Credentials and region come
# from the environment, which bench/run.sh sets to dummy values.
set -euo pipefail

endpoint=$1
out=$2
max_users=${3:-0}
mkdir -p "$out/access-keys"

calls=0
aws iam get-account-authorization-details --endpoint-url "$endpoint" \
    > "$out/authorization-details.json"
calls=$((calls + 1))

users=$(jq -r '.UserDetailList[].UserName' "$out/authorization-details.json")
if [ "$max_users" -gt 0 ]; then
    users=$(head -n "$max_users" <<< "$users")
fi

for user in $users; do
    aws iam list-access-keys --user-name "$user" --endpoint-url "$endpoint" \
        > "$out/access-keys/$user.json"
    calls=$((calls + 1))
done

echo "calls: $calls"
