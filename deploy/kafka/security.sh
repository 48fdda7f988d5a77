#!/bin/bash
# The kafka-security step of docker-compose.yml: creates a SCRAM-SHA-512 user per
# service, then applies the generated ACLs (acls.sh, from `ketenbus acl`). It runs
# once the brokers are healthy and before kafka-init creates the topics.
#
# Environment: BOOTSTRAP (the brokers' BROKER listener, by the host names their
# certificates name), CA_FILE (the CA certificate they are checked against), ADMIN_PASSWORD, SCRAM_USERS
# (space-separated user names) and, per user, SCRAM_PASSWORD_<NAME> with the name in
# upper case and `-` as `_` (ketenbus-router: SCRAM_PASSWORD_KETENBUS_ROUTER).
# Running it again is harmless: it resets the passwords to the given ones (which is
# how a password is rotated) and re-adds ACLs that exist.
set -euo pipefail

: "${BOOTSTRAP:?set BOOTSTRAP to the brokers}"
: "${SCRAM_USERS:?set SCRAM_USERS to the users to create}"
: "${CA_FILE:?set CA_FILE to the CA certificate of the brokers (deploy/kafka/make-certs.sh)}"
if [[ ! -r "$CA_FILE" ]]; then
  echo "CA_FILE=$CA_FILE: missing or not readable; make it with deploy/kafka/make-certs.sh" >&2
  exit 1
fi
here="$(cd "$(dirname "$0")" && pwd)"
export PATH="/opt/kafka/bin:$PATH"

# Passwords are written unquoted into a properties file and into kafka-configs.sh's
# `[password=...]`, where `,` `]` `=` and quotes would break the syntax.
check_password() {
  if [[ ! "$2" =~ ^[A-Za-z0-9._~+/-]{16,}$ ]]; then
    echo "$1: use 16 or more of A-Z a-z 0-9 . _ ~ + / - (e.g. openssl rand -hex 32)" >&2
    exit 1
  fi
}

admin_password="${ADMIN_PASSWORD:?set ADMIN_PASSWORD (compose: KETENBUS_KAFKA_ADMIN_PASSWORD)}"
check_password ADMIN_PASSWORD "$admin_password"
umask 077
ADMIN_CONFIG="$(mktemp)"
export ADMIN_CONFIG BOOTSTRAP
trap 'rm -f "$ADMIN_CONFIG"' EXIT
cat > "$ADMIN_CONFIG" <<PROPERTIES
security.protocol=SASL_SSL
ssl.truststore.type=PEM
ssl.truststore.location=$CA_FILE
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin_password";
PROPERTIES

for user in $SCRAM_USERS; do
  variable="SCRAM_PASSWORD_$(echo "$user" | tr 'a-z-' 'A-Z_')"
  password="${!variable:-}"
  if [[ -z "$password" ]]; then
    echo "$variable is not set: no password for Kafka user $user" >&2
    exit 1
  fi
  check_password "$variable" "$password"
  kafka-configs.sh --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" \
    --alter --entity-type users --entity-name "$user" \
    --add-config "SCRAM-SHA-512=[password=$password]"
done

sh "$here/acls.sh"
echo "kafka-security: users ($SCRAM_USERS) and ACLs in place"
