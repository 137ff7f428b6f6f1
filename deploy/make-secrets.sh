#!/bin/sh
# Makes the secrets docker-compose.yml reads, in deploy/secrets/ (a folder only you can open; kept out of git),
# also the keys of the Kubernetes secret streamer-redis (kubectl create secret generic --from-file=deploy/secrets/):
#   redis-worker, redis-producer, redis-runner, redis-serve, redis-admin   a Redis URL with each user's password
#   serve-token                                                             the status page's token
#   address, username, password                                             for KEDA: host:port, the serve user
# Existing files are kept, so running it again changes nothing; delete the folder to make new ones.
set -eu
folder=${1:-$(dirname "$0")/secrets}
umask 022
mkdir -p "$folder"
chmod 700 "$folder"
random() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }
for role in worker producer runner serve admin; do
    [ -s "$folder/redis-$role" ] || printf 'redis://%s:%s@redis:6379/0\n' "$role" "$(random)" > "$folder/redis-$role"
done
[ -s "$folder/serve-token" ] || random > "$folder/serve-token"
printf 'redis:6379' > "$folder/address"
printf 'serve' > "$folder/username"
sed -n -E 's#^redis://serve:([^@]*)@.*$#\1#p' "$folder/redis-serve" | tr -d '\n' > "$folder/password"
echo "secrets in $folder; the status page's token is in $folder/serve-token"
