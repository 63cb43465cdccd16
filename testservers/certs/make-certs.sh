# Recreate the bundled test CA and server certificate (testservers/certs/).
# Run in an empty directory with OpenSSL 3; copy ca.pem and server.pem out.
set -e
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
CNF
: > index.txt
echo 01 > serial
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -new -config ca.cnf -key ca.key -out ca.csr
openssl ca -batch -config ca.cnf -selfsign -keyfile ca.key -in ca.csr \
    -extensions v3_ca -startdate 20200101000000Z -enddate 21200101000000Z \
    -notext -out ca.pem
openssl ecparam -name prime256v1 -genkey -noout -out server.key
openssl req -new -key server.key -subj "/CN=localhost/O=testservers" -out server.csr
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in server.csr \
    -extensions v3_server -startdate 20200101000000Z -enddate 21200101000000Z \
    -notext -out server.crt
openssl pkcs8 -topk8 -nocrypt -in server.key -out server.p8
cat server.crt server.p8 > server.pem
