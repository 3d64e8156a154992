#!/bin/sh
# Start a single-node KRaft broker secured like dev/localkafka (the broker the tests run):
# SASL/SCRAM-SHA-512 on every client listener, the StandardAuthorizer denying by default
# (allow.everyone.if.no.acl.found=false), the admin principal as the only super user, and the
# controller listener on SASL/PLAIN for the admin (SCRAM users live in the metadata log the
# controller serves, so SCRAM cannot bootstrap it). No plaintext client listener.
#
# The SCRAM users (admin and service) are added when the storage is formatted, once: the
# passwords in the environment must stay the same for the lifetime of the kafka-data volume.
set -eu
: "${KAFKA_ADMIN_PASSWORD:?set KOPPELPUNT_KAFKA_ADMIN_PASSWORD in docker/.env}"
: "${KAFKA_SERVICE_PASSWORD:?set KOPPELPUNT_KAFKA_PASSWORD in docker/.env}"
: "${KAFKA_CLUSTER_ID:?}"
: "${KAFKA_EXTERNAL_HOST:=localhost}"
ADMIN=koppelpunt-admin
SERVICE=koppelpunt
CONF=/tmp/koppelpunt-kafka/server.properties
mkdir -p /tmp/koppelpunt-kafka

cat > "$CONF" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:9093
# INTERNAL: the compose network (the service, the ACL set-up); EXTERNAL: vendors on the host.
listeners=INTERNAL://:9092,EXTERNAL://:9094,CONTROLLER://:9093
advertised.listeners=INTERNAL://kafka:9092,EXTERNAL://${KAFKA_EXTERNAL_HOST}:9094
listener.security.protocol.map=INTERNAL:SASL_PLAINTEXT,EXTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
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
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
PROPS

# Client config of the admin, for the healthcheck and the ACL set-up (kafka-init).
cat > /tmp/koppelpunt-kafka/admin.properties <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${ADMIN}" password="${KAFKA_ADMIN_PASSWORD}";
PROPS

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$KAFKA_CLUSTER_ID" -c "$CONF" \
  --add-scram "SCRAM-SHA-512=[name=${ADMIN},password=${KAFKA_ADMIN_PASSWORD}]" \
  --add-scram "SCRAM-SHA-512=[name=${SERVICE},password=${KAFKA_SERVICE_PASSWORD}]"
exec /opt/kafka/bin/kafka-server-start.sh "$CONF"
