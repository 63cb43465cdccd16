#!/bin/sh
# Recreate every bundled test certificate in testservers/certs/.
#
#   sh testservers/certs/make-certs.sh [OUTPUT-DIRECTORY]
#
# Needs OpenSSL 3.  It works in a temporary directory, writes the PEM files
# into OUTPUT-DIRECTORY (by default the directory of this script) and then
# deletes the temporary directory with the CA's private key in it: nothing
# it leaves behind can sign a certificate that the test CA vouches for.
# Rerunning it makes a new CA, so every file changes together.
#
#   ca.pem             the test CA, self-signed                 2020 - 2120
#   server.pem         localhost, 127.0.0.1, ::1 (+ key)        2020 - 2120
#   client.pem         a client certificate for mutual TLS      2020 - 2120
#   expired.pem        as server.pem, but long expired          2000 - 2001
#   not-yet-valid.pem  as server.pem, but valid only later      2100 - 2120
#   wrong-host.pem     for wrong.host.invalid only              2020 - 2120
#   self-signed.pem    localhost etc., signed by its own key,   2020 - 2120
#                      which no client trusts
#
# Every key is P-256.  Each certificate carries what Python 3.13's
# VERIFY_X509_STRICT demands (basicConstraints critical, keyUsage, subject
# and authority key identifiers), so that the bad ones fail for exactly one
# reason: expired, not yet valid, host name mismatch, or self-signed.
set -eu

out=$(cd "${1:-$(dirname "$0")}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

cat > ca.cnf <<'CNF'
[ca]
default_ca = testca
[testca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = anything
copy_extensions = none
unique_subject = no
[anything]
commonName = supplied
organizationName = optional
[req]
distinguished_name = dn
prompt = no
[dn]
CN = testservers test CA
O = testservers
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_wrong_host]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.host.invalid
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_self_signed]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyCertSign
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF
: > index.txt
echo 01 > serial

# The CA: a self-signed certificate whose key is deleted on exit.
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -new -config ca.cnf -key ca.key -out ca.csr
openssl ca -batch -config ca.cnf -selfsign -keyfile ca.key -in ca.csr \
    -extensions v3_ca -startdate 20200101000000Z -enddate 21200101000000Z \
    -notext -out ca.pem

# leaf NAME SUBJECT EXTENSIONS START END: NAME.pem, a certificate signed by
# the CA followed by its unencrypted PKCS#8 key.
leaf() {
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
    openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in "$1.csr" \
        -extensions "$3" -startdate "$4" -enddate "$5" -notext -out "$1.crt"
    openssl pkcs8 -topk8 -nocrypt -in "$1.key" -out "$1.p8"
    cat "$1.crt" "$1.p8" > "$1.pem"
}

leaf server "/CN=localhost/O=testservers" v3_server 20200101000000Z 21200101000000Z
leaf client "/CN=testservers client/O=testservers" v3_client \
    20200101000000Z 21200101000000Z
leaf expired "/CN=localhost/O=testservers expired" v3_server \
    20000101000000Z 20010101000000Z
leaf not-yet-valid "/CN=localhost/O=testservers not yet valid" v3_server \
    21000101000000Z 21200101000000Z
leaf wrong-host "/CN=wrong.host.invalid/O=testservers" v3_wrong_host \
    20200101000000Z 21200101000000Z

# Self-signed: its own key signs it, so it is its own (untrusted) CA.
openssl ecparam -name prime256v1 -genkey -noout -out self-signed.key
openssl req -new -key self-signed.key -subj "/CN=localhost/O=testservers self-signed" \
    -out self-signed.csr
openssl ca -batch -config ca.cnf -selfsign -keyfile self-signed.key -in self-signed.csr \
    -extensions v3_self_signed -startdate 20200101000000Z -enddate 21200101000000Z \
    -notext -out self-signed.crt
openssl pkcs8 -topk8 -nocrypt -in self-signed.key -out self-signed.p8
cat self-signed.crt self-signed.p8 > self-signed.pem

cp ca.pem server.pem client.pem expired.pem not-yet-valid.pem wrong-host.pem \
    self-signed.pem "$out"/
