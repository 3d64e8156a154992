#!/bin/sh
# One-shot, after the broker (or every node of the cluster) is healthy: the service principal
# may write, create and describe the topics with the prefix vva.signalering., and describe
# groups (consumer lag), and nothing else (as dev/localkafka's _grant_service). Idempotent:
# adding an existing ACL again changes nothing.
set -eu
: "${KAFKA_ADMIN_PASSWORD:?set KOPPELPUNT_KAFKA_ADMIN_PASSWORD in docker/.env}"
: "${KAFKA_BOOTSTRAP:=kafka:9092}"
CONFIG=/tmp/admin.properties
cat > "$CONFIG" <<PROPS
security.protocol=SASL_SSL
ssl.truststore.type=PEM
ssl.truststore.location=/koppelpunt/tls/ca.pem
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="koppelpunt-admin" password="${KAFKA_ADMIN_PASSWORD}";
PROPS
/opt/kafka/bin/kafka-acls.sh --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$CONFIG" \
  --add --allow-principal User:koppelpunt \
  --operation Write --operation Describe --operation Create \
  --topic vva.signalering. --resource-pattern-type prefixed
exec /opt/kafka/bin/kafka-acls.sh --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$CONFIG" \
  --add --allow-principal User:koppelpunt --operation Describe --group '*'
