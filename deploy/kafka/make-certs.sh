#!/bin/bash
# Makes the TLS material of docker-compose.yml's Kafka cluster: a private CA and, per
# broker, a private key and a certificate for its host name, signed by that CA.
#
#   deploy/kafka/make-certs.sh [DIR [HOST ...]]
#
# DIR: where to write; default $KETENBUS_KAFKA_TLS_DIR, else tls/ at the top of the
# repository, which is where docker-compose.yml looks (${KETENBUS_KAFKA_TLS_DIR:-./tls}).
# HOST: the brokers' host names; default kafka-1 kafka-2 kafka-3, the names the compose
# brokers advertise and the clients connect to. It writes
#
#   DIR/ca.crt            the CA certificate: what the services and the brokers trust
#   DIR/ca.key            the CA's private key, needed only to issue certificates; compose
#                         mounts it nowhere: keep it off the brokers
#   DIR/HOST/broker.key   the broker's private key (PKCS#8 PEM, unencrypted, mode 0600)
#   DIR/HOST/broker.crt   its certificate (subjectAltName DNS:HOST), then the CA's
#   DIR/HOST/ca.crt       the CA certificate again: DIR/HOST is all a broker mounts
#   DIR/.gitignore        `*`: none of it belongs in git
#
# An existing CA (DIR/ca.key and DIR/ca.crt) is kept, so running this again renews the
# broker certificates without changing what the clients trust; restart the brokers one at
# a time to load them. Remove DIR to start over with a new CA. To use certificates from
# your own PKI instead, put them in the same layout.
#
# Apache Kafka reads the PEM files itself (ssl.keystore.type=PEM): deploy/kafka/broker.sh
# joins broker.key and broker.crt into the node's keystore when it starts. The apache/kafka
# image runs as uid 1000, which must be able to read broker.key: run as root, this script
# gives the broker keys to KAFKA_UID (default 1000); run as another user, it says what to
# chown. CA_DAYS (default 3650) and CERT_DAYS (default 730) set the validity.
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
  exit 0
fi

here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-${KETENBUS_KAFKA_TLS_DIR:-$here/../../tls}}"
if [[ $# -gt 0 ]]; then
  shift
fi
hosts=("$@")
if [[ ${#hosts[@]} -eq 0 ]]; then
  hosts=(kafka-1 kafka-2 kafka-3)
fi
ca_days="${CA_DAYS:-3650}"
cert_days="${CERT_DAYS:-730}"
kafka_uid="${KAFKA_UID:-1000}"

fail() {
  echo "make-certs.sh: $*" >&2
  exit 1
}

command -v openssl > /dev/null || fail "needs openssl"
for host in "${hosts[@]}"; do
  # A DNS name: it becomes the certificate's subjectAltName and a directory name.
  [[ "$host" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] || fail "not a host name: $host"
done
[[ "$ca_days" =~ ^[1-9][0-9]*$ && "$cert_days" =~ ^[1-9][0-9]*$ ]] ||
  fail "CA_DAYS and CERT_DAYS are whole numbers of days"

umask 022
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[[ -e "$dir/.gitignore" ]] || printf '*\n' > "$dir/.gitignore"

serial() {
  echo "0x$(openssl rand -hex 16)"
}

# new_key FILE: a P-256 key as unencrypted PKCS#8 PEM (`BEGIN PRIVATE KEY`), the form
# Kafka's PEM keystore and Python's ssl both read, readable by its owner only.
new_key() {
  rm -f "$1"
  (umask 077 && openssl ecparam -name prime256v1 -genkey -noout |
    openssl pkcs8 -topk8 -nocrypt -out "$1")
  chmod 600 "$1"
}

same_public_key() {
  [[ "$(openssl x509 -noout -pubkey -in "$1")" == "$(openssl pkey -pubout -in "$2")" ]]
}

if [[ -e "$dir/ca.key" || -e "$dir/ca.crt" ]]; then
  [[ -f "$dir/ca.key" && -f "$dir/ca.crt" ]] ||
    fail "$dir holds only one of ca.key and ca.crt: restore the other, or remove both for a new CA"
  same_public_key "$dir/ca.crt" "$dir/ca.key" || fail "$dir/ca.key is not the key of $dir/ca.crt"
  echo "CA: keeping $dir/ca.crt"
else
  cat > "$work/ca.cnf" << 'CONFIG'
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca
[dn]
O = Ketenbus
CN = Ketenbus Kafka CA
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CONFIG
  new_key "$dir/ca.key"
  openssl req -new -x509 -config "$work/ca.cnf" -key "$dir/ca.key" -sha256 \
    -days "$ca_days" -set_serial "$(serial)" -out "$work/ca.crt"
  mv "$work/ca.crt" "$dir/ca.crt"
  chmod 644 "$dir/ca.crt"
  echo "CA: made $dir/ca.crt (its key: $dir/ca.key)"
fi

not_readable=()
for host in "${hosts[@]}"; do
  mkdir -p "$dir/$host"
  cat > "$work/$host.cnf" << CONFIG
[req]
distinguished_name = dn
prompt = no
[dn]
O = Ketenbus
CN = $host
[broker]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
# serverAuth for its listeners; clientAuth for its own connections to the other nodes.
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:$host
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CONFIG
  new_key "$work/$host.key"
  openssl req -new -config "$work/$host.cnf" -key "$work/$host.key" -out "$work/$host.csr"
  # (OpenSSL 3 reports "Certificate request self-signature ok" on stderr: shown on failure only.)
  openssl x509 -req -in "$work/$host.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -set_serial "$(serial)" -days "$cert_days" -sha256 \
    -extfile "$work/$host.cnf" -extensions broker -out "$work/$host.crt" 2> "$work/x509.log" ||
    { cat "$work/x509.log" >&2; fail "could not sign the certificate of $host"; }
  openssl verify -CAfile "$dir/ca.crt" -purpose sslserver "$work/$host.crt" > /dev/null ||
    fail "the certificate made for $host does not verify against $dir/ca.crt"
  cat "$work/$host.crt" "$dir/ca.crt" > "$work/$host.chain"
  # Key and certificate are replaced together, each by a rename within DIR.
  mv "$work/$host.key" "$dir/$host/broker.key.new"
  mv "$work/$host.chain" "$dir/$host/broker.crt.new"
  chmod 644 "$dir/$host/broker.crt.new"
  mv "$dir/$host/broker.key.new" "$dir/$host/broker.key"
  mv "$dir/$host/broker.crt.new" "$dir/$host/broker.crt"
  cp "$dir/ca.crt" "$dir/$host/ca.crt"
  if [[ "$(id -u)" == 0 ]]; then
    chown "$kafka_uid" "$dir/$host/broker.key"
  elif [[ "$(id -u)" != "$kafka_uid" ]]; then
    not_readable+=("$dir/$host/broker.key")
  fi
  echo "$host: made $dir/$host/broker.crt and broker.key (valid $cert_days days)"
done

if [[ ${#not_readable[@]} -gt 0 ]]; then
  echo "The brokers run as uid $kafka_uid, which cannot read the keys yet: run" >&2
  echo "  sudo chown $kafka_uid ${not_readable[*]}" >&2
fi
