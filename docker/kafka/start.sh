#!/bin/sh
# Start one KRaft node (combined broker+controller) secured like dev/localkafka (the broker the
# tests run): SASL_SSL with SCRAM-SHA-512 on every client listener (the certificate and CA from
# `python -m dev.localkafka docker-tls`, mounted at /koppelpunt/tls), the StandardAuthorizer
# denying by default (allow.everyone.if.no.acl.found=false), the admin principal as the only
# super user, and the controller listener on SASL/PLAIN for the admin (SCRAM users live in the
# metadata log the controller serves, so SCRAM cannot bootstrap it). No plaintext client
# listener.
#
# One script for the single broker (docker/compose.yaml, the defaults below) and each node of
# the three-node cluster (docker/compose.cluster.yaml sets KAFKA_NODE_ID, KAFKA_HOST,
# KAFKA_VOTERS, KAFKA_EXTERNAL_PORT and the replication: 3 replicas, 2 in sync).
#
# The SCRAM users (admin and service) are added when the storage is formatted, once: the
# passwords in the environment must stay the same for the lifetime of the data volume.
set -eu
: "${KAFKA_ADMIN_PASSWORD:?set KOPPELPUNT_KAFKA_ADMIN_PASSWORD in docker/.env}"
: "${KAFKA_SERVICE_PASSWORD:?set KOPPELPUNT_KAFKA_PASSWORD in docker/.env}"
: "${KAFKA_CLUSTER_ID:?}"
: "${KAFKA_EXTERNAL_HOST:=localhost}"
: "${KAFKA_NODE_ID:=1}"
: "${KAFKA_HOST:=kafka}"
: "${KAFKA_VOTERS:=1@kafka:9093}"
: "${KAFKA_EXTERNAL_PORT:=9094}"
: "${KAFKA_REPLICAS:=1}"
: "${KAFKA_MIN_ISR:=1}"
TLS=/koppelpunt/tls
[ -r "$TLS/broker-keystore.pem" ] || {
  echo "no $TLS/broker-keystore.pem: run python -m dev.localkafka docker-tls first" >&2
  exit 1
}
ADMIN=koppelpunt-admin
SERVICE=koppelpunt
CONF=/tmp/koppelpunt-kafka/server.properties
mkdir -p /tmp/koppelpunt-kafka

cat > "$CONF" <<PROPS
process.roles=broker,controller
node.id=${KAFKA_NODE_ID}
controller.quorum.voters=${KAFKA_VOTERS}
# INTERNAL: the compose network (the service, the ACL set-up, the other brokers); EXTERNAL:
# vendors on the host.
listeners=INTERNAL://:9092,EXTERNAL://:${KAFKA_EXTERNAL_PORT},CONTROLLER://:9093
advertised.listeners=INTERNAL://${KAFKA_HOST}:9092,EXTERNAL://${KAFKA_EXTERNAL_HOST}:${KAFKA_EXTERNAL_PORT}
listener.security.protocol.map=INTERNAL:SASL_SSL,EXTERNAL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
ssl.keystore.type=PEM
ssl.keystore.location=${TLS}/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=${TLS}/ca.pem
ssl.endpoint.identification.algorithm=https
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.internal.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${ADMIN}" password="${KAFKA_ADMIN_PASSWORD}";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="${ADMIN}" password="${KAFKA_ADMIN_PASSWORD}" user_${ADMIN}="${KAFKA_ADMIN_PASSWORD}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:${ADMIN}
log.dirs=/var/lib/kafka/data
auto.create.topics.enable=false
offsets.topic.replication.factor=${KAFKA_REPLICAS}
transaction.state.log.replication.factor=${KAFKA_REPLICAS}
transaction.state.log.min.isr=${KAFKA_MIN_ISR}
share.coordinator.state.topic.replication.factor=${KAFKA_REPLICAS}
share.coordinator.state.topic.min.isr=${KAFKA_MIN_ISR}
default.replication.factor=${KAFKA_REPLICAS}
min.insync.replicas=${KAFKA_MIN_ISR}
group.initial.rebalance.delay.ms=0
PROPS

# Client config of the admin, for the healthcheck and the ACL set-up (kafka-init).
cat > /tmp/koppelpunt-kafka/admin.properties <<PROPS
security.protocol=SASL_SSL
ssl.truststore.type=PEM
ssl.truststore.location=${TLS}/ca.pem
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${ADMIN}" password="${KAFKA_ADMIN_PASSWORD}";
PROPS

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$KAFKA_CLUSTER_ID" -c "$CONF" \
  --add-scram "SCRAM-SHA-512=[name=${ADMIN},password=${KAFKA_ADMIN_PASSWORD}]" \
  --add-scram "SCRAM-SHA-512=[name=${SERVICE},password=${KAFKA_SERVICE_PASSWORD}]"
exec /opt/kafka/bin/kafka-server-start.sh "$CONF"
