#!/bin/sh
# Redis with the users of users.acl, each with the password of its URL in the secrets folder
# (Docker secrets or a Kubernetes Secret mounted as files): redis-ROLE holds redis://ROLE:PASSWORD@host:port/db.
#
#   sh acl.sh start COMMAND...   write the ACL file (mode 600) and run COMMAND --aclfile FILE
#   sh acl.sh ping                redis-cli ping as the admin user (the health check)
#
# Passwords pass through the environment and files only, never a command line (which `ps` shows).
# Folders: SECRETS (default /run/secrets), ACL_TEMPLATE (default users.acl beside this script),
# ACL_OUT (default /data/users.acl); REDIS_PORT for ping (default 6379).
set -eu
here=$(dirname "$0")
SECRETS=${SECRETS:-/run/secrets}
ACL_TEMPLATE=${ACL_TEMPLATE:-$here/users.acl}
ACL_OUT=${ACL_OUT:-/data/users.acl}
ROLES="worker producer runner serve admin"

password() {  # the password of $SECRETS/redis-$1, or exit 2 saying what the file must hold
    file="$SECRETS/redis-$1"
    if [ ! -r "$file" ]; then
        echo "acl.sh: cannot read $file; it must hold redis://$1:PASSWORD@redis:6379/0" >&2
        exit 2
    fi
    value=$(sed -n -E "1s#^rediss?://$1:([A-Za-z0-9_-]{16,})@[^@]*\$#\\1#p" "$file")
    if [ -z "$value" ]; then
        echo "acl.sh: $file must hold redis://$1:PASSWORD@host:port/db, PASSWORD 16+ letters, digits, - or _" >&2
        exit 2
    fi
    printf '%s' "$value"
}

case "${1:-}" in
    ping)
        REDISCLI_AUTH=$(password admin)
        export REDISCLI_AUTH
        exec redis-cli --no-auth-warning --user admin -p "${REDIS_PORT:-6379}" ping
        ;;
    start)
        shift
        for role in $ROLES; do
            eval "STREAMER_ACL_$role=\$(password $role)"
            export "STREAMER_ACL_$role"
        done
        umask 077
        awk -v roles="$ROLES" '{
            n = split(roles, role, " ")
            for (i = 1; i <= n; i++) gsub(">change-me-" role[i] " ", ">" ENVIRON["STREAMER_ACL_" role[i]] " ")
            if ($0 ~ />change-me-/) { print "acl.sh: a user of " FILENAME " has no secret: " $2 > "/dev/stderr"; exit 2 }
            print
        }' "$ACL_TEMPLATE" > "$ACL_OUT.tmp"
        mv "$ACL_OUT.tmp" "$ACL_OUT"
        for role in $ROLES; do unset "STREAMER_ACL_$role"; done
        exec "$@" --aclfile "$ACL_OUT"
        ;;
    *)
        echo "usage: sh acl.sh start redis-server [OPTIONS...] | sh acl.sh ping" >&2
        exit 2
        ;;
esac
