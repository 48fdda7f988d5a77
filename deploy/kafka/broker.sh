#!/bin/bash
# Entry point of each Apache Kafka node in docker-compose.yml: writes the node's SASL
# credentials from the environment and its TLS keystore from its key and certificate,
# then starts the image's own start script.
#
# The admin password arrives as ADMIN_PASSWORD (compose interpolates it from
# KETENBUS_KAFKA_ADMIN_PASSWORD). It goes into a JAAS file rather than a KAFKA_*
# variable because the image turns KAFKA_* variables into server.properties lines and
# silently drops any whose value holds a `=`, which every JAAS entry does.
set -euo pipefail

password="${ADMIN_PASSWORD:?set ADMIN_PASSWORD (compose: KETENBUS_KAFKA_ADMIN_PASSWORD)}"
# Written unescaped into JAAS and properties files: allow only characters that need no quoting.
if [[ ! "$password" =~ ^[A-Za-z0-9._~+/-]{16,}$ ]]; then
  echo "ADMIN_PASSWORD: use 16 or more of A-Z a-z 0-9 . _ ~ + / - (e.g. openssl rand -hex 32)" >&2
  exit 1
fi
unset ADMIN_PASSWORD

# Under the image's own secrets volume; the healthcheck in docker-compose.yml reads admin.properties.
jaas_file=/etc/kafka/secrets/kafka_server_jaas.conf
admin_config=/etc/kafka/secrets/admin.properties
umask 077

# TLS on every listener. The node's directory from deploy/kafka/make-certs.sh (or your own
# PKI, in the same layout) is mounted here read-only: broker.key, broker.crt (the node's
# certificate, then the CA's) and ca.crt.
tls_dir=/etc/kafka/tls
keystore="${KAFKA_SSL_KEYSTORE_LOCATION:?set KAFKA_SSL_KEYSTORE_LOCATION (the PEM keystore this script writes)}"
truststore="${KAFKA_SSL_TRUSTSTORE_LOCATION:?set KAFKA_SSL_TRUSTSTORE_LOCATION (the CA certificate)}"
for file in "$tls_dir/broker.key" "$tls_dir/broker.crt" "$truststore"; do
  if [[ ! -r "$file" ]]; then
    echo "$file: missing or not readable by uid $(id -u). Make the certificates with" \
      "deploy/kafka/make-certs.sh (as root, or chown the broker.key files to uid $(id -u))." >&2
    exit 1
  fi
done
# Kafka's PEM keystore is one file: the private key, then the certificate chain.
cat "$tls_dir/broker.key" "$tls_dir/broker.crt" > "$keystore"

# PLAIN carries the admin between the nodes (BROKER and CONTROLLER listeners): its
# users live in this file, so it works before any SCRAM user exists. SCRAM-SHA-512
# on the CLIENT listener checks the users kafka-security created in the cluster.
cat > "$jaas_file" <<JAAS
KafkaServer {
  org.apache.kafka.common.security.plain.PlainLoginModule required
    username="admin"
    password="$password"
    user_admin="$password";
  org.apache.kafka.common.security.scram.ScramLoginModule required;
};
JAAS

# For the healthcheck: an admin client on this node's BROKER listener, by its host name
# (what its certificate names).
cat > "$admin_config" <<PROPERTIES
security.protocol=SASL_SSL
ssl.truststore.type=PEM
ssl.truststore.location=$truststore
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$password";
PROPERTIES

export KAFKA_OPTS="-Djava.security.auth.login.config=$jaas_file${KAFKA_OPTS:+ $KAFKA_OPTS}"
exec /etc/kafka/docker/run
